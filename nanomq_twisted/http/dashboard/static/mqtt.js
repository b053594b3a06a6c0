// A minimal MQTT 3.1.1 client over WebSocket for the live subscription
// view: CONNECT, SUBSCRIBE, PUBLISH received (QoS 0; QoS 1 acknowledged
// should one come), PINGREQ, DISCONNECT.  Nothing else: the view only
// listens, and asks for QoS 0, so the broker never sends more
// [MQTT-3.8.4-6].
//
// Why our own instead of MQTT.js: its browser bundle is about 370 KB
// minified, more than the whole dashboard, and would have to be vendored
// or built -- this package has no build step and commits no generated
// trees.  The part of MQTT a listener needs fits in this file, and the
// browser test drives it against the broker's own WebSocket listener.

const CONNECT = 0x10;
const CONNACK = 0x20;
const PUBLISH = 0x30;
const PUBACK = 0x40;
const SUBSCRIBE = 0x82;
const SUBACK = 0x90;
const PINGREQ = 0xc0;
const PINGRESP = 0xd0;
const DISCONNECT = 0xe0;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: false });

function lengthBytes(length) {
  const out = [];
  do {
    let byte = length % 128;
    length = Math.floor(length / 128);
    if (length > 0) byte |= 0x80;
    out.push(byte);
  } while (length > 0);
  return out;
}

function utf8(text) {
  const bytes = encoder.encode(text);
  return [bytes.length >> 8, bytes.length & 0xff, ...bytes];
}

function packet(first, body) {
  return new Uint8Array([first, ...lengthBytes(body.length), ...body]);
}

/** Split `buffer` into whole packets: [[first byte, body], ...] and the rest. */
export function split(buffer) {
  const packets = [];
  let offset = 0;
  for (;;) {
    if (buffer.length - offset < 2) break;
    let length = 0;
    let multiplier = 1;
    let index = offset + 1;
    let complete = false;
    while (index < buffer.length && index < offset + 5) {
      const byte = buffer[index];
      length += (byte & 0x7f) * multiplier;
      multiplier *= 128;
      index += 1;
      if ((byte & 0x80) === 0) {
        complete = true;
        break;
      }
    }
    if (!complete || buffer.length < index + length) break;
    packets.push([buffer[offset], buffer.subarray(index, index + length)]);
    offset = index + length;
  }
  return [packets, buffer.slice(offset)];
}

/**
 * Connect to `url` (ws:// or wss://, subprotocol "mqtt").  Callbacks:
 * onConnect(), onMessage({topic, payload (Uint8Array), text, retain}),
 * onClose(reason).  Returns {subscribe(filter), close()}.
 */
export function connect(url, { clientId, username, password, keepalive = 30 }, handlers) {
  const socket = new WebSocket(url, ["mqtt"]);
  socket.binaryType = "arraybuffer";
  let buffer = new Uint8Array(0);
  let nextId = 1;
  let pinger = null;
  let closed = false;

  function send(bytes) {
    if (socket.readyState === WebSocket.OPEN) socket.send(bytes);
  }

  function finish(reason) {
    if (closed) return;
    closed = true;
    clearInterval(pinger);
    if (handlers.onClose) handlers.onClose(reason);
  }

  socket.addEventListener("open", () => {
    let flags = 0x02; // clean session
    const payload = utf8(clientId);
    if (username) {
      flags |= 0x80;
      payload.push(...utf8(username));
      if (password) {
        flags |= 0x40;
        payload.push(...utf8(password));
      }
    }
    const header = [...utf8("MQTT"), 4, flags, keepalive >> 8, keepalive & 0xff];
    send(packet(CONNECT, [...header, ...payload]));
  });

  socket.addEventListener("message", (event) => {
    const data = new Uint8Array(event.data);
    const joined = new Uint8Array(buffer.length + data.length);
    joined.set(buffer);
    joined.set(data, buffer.length);
    const [packets, rest] = split(joined);
    buffer = rest;
    for (const [first, body] of packets) receive(first, body);
  });

  socket.addEventListener("close", (event) => finish(event.reason || `closed (${event.code})`));
  socket.addEventListener("error", () => finish("the WebSocket failed"));

  function receive(first, body) {
    const kind = first & 0xf0;
    if (kind === CONNACK) {
      if (body[1] !== 0) {
        finish(`CONNACK refused with return code ${body[1]}`);
        socket.close();
        return;
      }
      pinger = setInterval(() => send(new Uint8Array([PINGREQ, 0])), (keepalive * 1000) / 2);
      if (handlers.onConnect) handlers.onConnect();
    } else if (kind === PUBLISH) {
      const qos = (first >> 1) & 3;
      const topicLength = (body[0] << 8) | body[1];
      const topic = decoder.decode(body.subarray(2, 2 + topicLength));
      let offset = 2 + topicLength;
      if (qos > 0) {
        send(packet(PUBACK, [body[offset], body[offset + 1]]));
        offset += 2;
      }
      const payload = body.slice(offset);
      handlers.onMessage({ topic, payload, text: decoder.decode(payload), retain: !!(first & 1), qos });
    } else if (kind === SUBACK) {
      const refused = Array.from(body.subarray(2)).some((code) => code === 0x80);
      if (refused && handlers.onRefused) handlers.onRefused();
    } else if (kind !== PINGRESP) {
      finish(`unexpected packet type ${kind >> 4}`);
      socket.close();
    }
  }

  return {
    subscribe(filter) {
      const id = nextId;
      nextId = (nextId % 65535) + 1;
      send(packet(SUBSCRIBE, [id >> 8, id & 0xff, ...utf8(filter), 0]));
    },
    close() {
      send(new Uint8Array([DISCONNECT, 0]));
      socket.close();
      finish("closed");
    },
  };
}
