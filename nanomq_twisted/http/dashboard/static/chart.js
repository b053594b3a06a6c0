// A small SVG line chart for the overview: up to the last 15 minutes of
// one or two series, y from zero to a rounded maximum.  Hand-written (about a
// hundred lines) instead of a charting library: the overview needs
// polylines, two axis labels and a legend, nothing a 40-200 KB library
// adds would be used, and there is no build step to bundle one.
//
// For screen readers the SVG is one image whose label says the latest
// values; the numbers are also in the cards above the charts.

import { h } from "./util.js";

const NS = "http://www.w3.org/2000/svg";
const WIDTH = 400;
const HEIGHT = 140;
const LEFT = 44;
const BOTTOM = 18;

function svg(tag, attrs = {}) {
  const element = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) element.setAttribute(key, String(value));
  return element;
}

function ago(seconds) {
  return seconds >= 60 ? `${Math.round(seconds / 60)} min` : `${Math.round(seconds)} s`;
}

/** 1, 2 or 5 times a power of ten, at least `value`. */
function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

/**
 * A chart: `series` is [{label, key}] read from each sample; `format`
 * turns a value into text.  Returns {element, update(samples, span)}.
 */
export function lineChart(title, series, format = (v) => String(v)) {
  const plot = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", preserveAspectRatio: "none",
    "aria-label": `${title}: no data yet`,
  });
  const legend = h("span", { class: "legend" },
    series.map((s, i) => h("span", { class: `s${i + 1}` }, s.label)));
  const element = h("figure", { class: "chart" }, h("figcaption", {}, title, legend), plot);

  function update(samples, span) {
    plot.replaceChildren();
    // The x axis runs from the oldest sample kept (at most `span` ago) to
    // the newest: a broker up for two minutes fills the chart with them.
    const end = samples.length ? samples[samples.length - 1].time : 0;
    const start = samples.length ? Math.max(end - span, samples[0].time) : end - span;
    const width = Math.max(end - start, 1);
    let top = 0;
    for (const sample of samples) for (const s of series) top = Math.max(top, sample[s.key] || 0);
    top = niceCeiling(top);
    const x = (t) => LEFT + ((t - start) / width) * (WIDTH - LEFT - 4);
    const y = (v) => 4 + (1 - v / top) * (HEIGHT - BOTTOM - 8);
    plot.append(
      svg("line", { class: "axis", x1: LEFT, y1: y(0), x2: WIDTH - 4, y2: y(0) }),
      svg("line", { class: "axis", x1: LEFT, y1: y(top), x2: WIDTH - 4, y2: y(top) }),
    );
    const labels = [
      [4, y(top) + 4, format(top)], [4, y(0) + 4, format(0)],
      [LEFT, HEIGHT - 3, `${ago(end - start)} ago`], [WIDTH - 28, HEIGHT - 3, "now"],
    ];
    for (const [lx, ly, text] of labels) {
      const label = svg("text", { x: lx, y: ly });
      label.textContent = text;
      plot.append(label);
    }
    series.forEach((s, i) => {
      const points = samples
        .filter((sample) => sample.time >= start && typeof sample[s.key] === "number")
        .map((sample) => `${x(sample.time).toFixed(1)},${y(sample[s.key]).toFixed(1)}`);
      const line = svg("polyline", { class: `s${i + 1}`, points: points.join(" ") });
      line.dataset.points = String(points.length);
      plot.append(line);
    });
    const last = samples[samples.length - 1];
    plot.setAttribute("aria-label", last
      ? `${title}, latest: ${series.map((s) => `${s.label} ${format(last[s.key])}`).join(", ")}`
      : `${title}: no data yet`);
  }

  return { element, update };
}
