"""
``GET /topic-tree``: the subscription trie, breadth first.

``data[0]`` is the root level, ``data[1]`` the first topic levels, and so
on; a node is ``{"topic": <level>, "cld_cnt": <children>}`` plus
``"clientid": [...]`` when clients subscribe exactly there (as NanoMQ's
output shows).  Shared subscriptions appear under ``$share/<group>/...``.
The tree is rebuilt from ``SubscriptionTrie.walk()`` (public API) rather
than by reading the trie's nodes; children are listed in byte order.
"""

from .common import ok


class _Node:
    __slots__ = ("children", "clients", "name")

    def __init__(self, name):
        self.name = name
        self.children = {}
        self.clients = []


def build_tree(trie):
    root = _Node("")
    for topic_filter, client_ids in trie.walk():
        node = root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Node(level)
            node = child
        node.clients.extend(client_ids)
    return root


def levels(root):
    out = []
    current = [root]
    while current:
        row = []
        following = []
        for node in current:
            item = {"topic": node.name, "cld_cnt": len(node.children)}
            if node.clients:
                item["clientid"] = list(node.clients)
            row.append(item)
            following.extend(node.children[k] for k in sorted(node.children))
        out.append(row)
        current = following
    return out


def topic_tree(api, request):
    return ok(data=levels(build_tree(api.broker.subscriptions)))
