"""The HTML report's gallery script (inline in the page; vanilla JavaScript, no library).

It reads the gallery's JSON (html_gallery.py), builds one card per expression, draws the
heatmaps (a colour table over the 8-bit map) and the masks (map / 255 ≥ τ, the stored run's
rule) on canvases, and applies the controls. The controls mirror the URL's hash
(`#dataset=…&setting=…&sort=worst&a=…&b=…&filter=area_bin:large&q=red`), so a view can be
linked, and a hash given on load is applied (the page then opens at the gallery; `view=gallery`
shows the gallery alone). #status then carries data-items (expressions in the gallery),
data-visible (shown after the filter and search), data-first (the first shown, after sorting)
and data-rendered (cards whose canvases are drawn).
"""

GALLERY_SCRIPT = r"""
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("gallery-data").textContent);
  var LUT = DATA.colormap;
  var byId = function (id) { return document.getElementById(id); };
  var status = byId("status");
  var state = {dataset: "", setting: "", sort: "order", a: "", b: "", filter: "", q: "", thumb: "72",
               view: ""};
  var built = {};

  function gallery() {
    for (var i = 0; i < DATA.galleries.length; i++) {
      if (DATA.galleries[i].dataset === state.dataset) { return DATA.galleries[i]; }
    }
    return DATA.galleries[0];
  }
  function specs(g) { return g.methods.map(function (m) { return m.spec; }); }
  function parseSetting(name) {
    var crf = /\+crf$/.test(name);
    return {tau: parseFloat(name.replace(/^tau=/, "").replace(/\+crf$/, "")), crf: crf};
  }

  function readHash() {
    var params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    params.forEach(function (value, key) { if (key in state) { state[key] = value; } });
  }
  function writeHash() {
    var params = new URLSearchParams();
    Object.keys(state).forEach(function (key) { if (state[key]) { params.set(key, state[key]); } });
    try { history.replaceState(null, "", "#" + params.toString()); } catch (e) { /* file:// quirks */ }
  }
  function normalise(g) {
    state.dataset = g.dataset;
    if (g.settings.indexOf(state.setting) < 0) { state.setting = g.default_setting || ""; }
    var names = specs(g);
    if (names.indexOf(state.a) < 0) { state.a = names[0] || ""; }
    if (names.indexOf(state.b) < 0) { state.b = names[1] || names[0] || ""; }
    var bin = state.filter.split(":");
    if (state.filter && !(g.bins[bin[0]] && g.bins[bin[0]].indexOf(bin.slice(1).join(":")) >= 0)) {
      state.filter = "";
    }
  }

  function fill(select, options, value) {
    select.innerHTML = "";
    options.forEach(function (o) {
      var parent = select;
      if (o.group) {
        parent = document.createElement("optgroup");
        parent.label = o.group;
        select.appendChild(parent);
        o.options.forEach(function (p) { parent.appendChild(option(p[0], p[1])); });
        return;
      }
      parent.appendChild(option(o[0], o[1]));
    });
    select.value = value;
  }
  function option(value, label) {
    var o = document.createElement("option");
    o.value = value;
    o.textContent = label;
    return o;
  }
  function fillControls(g) {
    fill(byId("c-dataset"), DATA.galleries.map(function (x) {
      return [x.dataset, x.dataset + " " + x.split]; }), state.dataset);
    fill(byId("c-setting"), g.settings.map(function (s) { return [s, s]; }), state.setting);
    var methods = g.methods.map(function (m) { return [m.spec, m.spec]; });
    fill(byId("c-a"), methods, state.a);
    fill(byId("c-b"), methods, state.b);
    var filters = [["", "all expressions"]];
    Object.keys(g.bins).forEach(function (column) {
      filters.push({group: column.replace(/_bin$/, ""), options: g.bins[column].map(function (b) {
        var n = g.items.filter(function (item) { return item.bins[column] === b; }).length;
        return [column + ":" + b, b + " (" + n + ")"]; })});
    });
    fill(byId("c-filter"), filters, state.filter);
    byId("c-sort").value = state.sort;
    if (byId("c-q").value !== state.q) { byId("c-q").value = state.q; }
    byId("c-thumb").value = state.thumb;
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function decode(uri) {
    return new Promise(function (resolve, reject) {
      if (!uri) { resolve(null); return; }
      var img = new Image();
      img.onload = function () {
        var c = document.createElement("canvas");
        c.width = img.naturalWidth;
        c.height = img.naturalHeight;
        var ctx = c.getContext("2d");
        ctx.drawImage(img, 0, 0);
        resolve(ctx.getImageData(0, 0, c.width, c.height));
      };
      img.onerror = function () { reject(new Error("an embedded image did not decode")); };
      img.src = uri;
    });
  }

  function buildCard(g, item, index) {
    var card = element("div", "item");
    card.setAttribute("data-id", item.id);
    var head = element("div", "item-head");
    head.appendChild(element("span", "rank", ""));
    head.appendChild(element("span", "text", "\u201c" + item.text + "\u201d"));
    var bins = Object.keys(item.bins).map(function (k) { return item.bins[k]; }).filter(Boolean);
    head.appendChild(element("span", "meta", "  \u00b7 id " + item.id + " \u00b7 image " + item.image_id +
                                             " \u00b7 " + bins.join(" \u00b7 ")));
    head.appendChild(element("span", "delta", ""));
    card.appendChild(head);
    var row = element("div", "grid");
    var first = element("div");
    var picture = element("canvas");
    first.appendChild(picture);
    row.appendChild(first);
    var views = {picture: picture, methods: {}};
    g.methods.forEach(function (m) {
      var cell = element("div");
      var hasMap = Boolean(item.maps[m.spec] || item.crf_maps[m.spec]);
      var view = {heat: null, mask: null, pair: null, note: null, iou: element("div", "iou")};
      if (hasMap) {
        var pair = view.pair = element("div", "pair");
        view.heat = element("canvas");
        view.mask = element("canvas");
        view.heat.title = m.spec + ": map";
        view.mask.title = m.spec + ": mask at the setting's \u03c4 (red), ground truth outlined (green)";
        pair.appendChild(view.heat);
        pair.appendChild(view.mask);
        cell.appendChild(pair);
        view.note = element("div", "missing", "");   // shown for a setting this method lacks
        view.note.hidden = true;
        cell.appendChild(view.note);
      } else {
        var missing = element("div", "missing", m.maps ? "no map for this expression"
                              : "map not saved: rerun with --save-predictions");
        missing.title = m.command || "";
        cell.appendChild(missing);
      }
      cell.appendChild(view.iou);
      views.methods[m.spec] = view;
      row.appendChild(cell);
    });
    card.appendChild(row);
    var decoded = Promise.all([decode(item.image), decode(item.outline)].concat(
      g.methods.map(function (m) { return decode(item.maps[m.spec]); }),
      g.methods.map(function (m) { return decode(item.crf_maps[m.spec]); })));
    return {card: card, head: head, views: views, decoded: decoded};
  }

  function paint(target, source) {
    target.width = source.width;
    target.height = source.height;
    target.getContext("2d").putImageData(source, 0, 0);
  }
  function drawPicture(target, image, outline) {
    var out = new ImageData(new Uint8ClampedArray(image.data), image.width, image.height);
    for (var p = 0; p < out.data.length; p += 4) {
      if (outline.data[p] > 127) { out.data[p] = 0; out.data[p + 1] = 255; out.data[p + 2] = 0; }
    }
    paint(target, out);
  }
  function drawHeat(target, map) {
    var out = new ImageData(map.width, map.height);
    for (var p = 0; p < out.data.length; p += 4) {
      var rgb = LUT[map.data[p]];
      out.data[p] = rgb[0]; out.data[p + 1] = rgb[1]; out.data[p + 2] = rgb[2]; out.data[p + 3] = 255;
    }
    paint(target, out);
  }
  function drawMask(target, image, outline, map, tau) {
    var out = new ImageData(map.width, map.height);
    for (var p = 0; p < out.data.length; p += 4) {
      var on = map.data[p] / 255 >= tau;
      for (var c = 0; c < 3; c++) {
        var value = image.data[p + c];
        out.data[p + c] = on ? 0.45 * value + 0.55 * (c === 0 ? 255 : 40) : 0.35 * value;
      }
      if (outline.data[p] > 127) { out.data[p] = 0; out.data[p + 1] = 255; out.data[p + 2] = 0; }
      out.data[p + 3] = 255;
    }
    paint(target, out);
  }

  function render(g, entry) {
    var setting = parseSetting(state.setting);
    var stamp = state.dataset + "|" + state.setting;
    return entry.decoded.then(function (pixels) {
      var image = pixels[0], outline = pixels[1], n = g.methods.length;
      if (entry.drawn === stamp) { return; }
      if (!entry.pictured) { drawPicture(entry.views.picture, image, outline); entry.pictured = true; }
      g.methods.forEach(function (m, k) {
        var view = entry.views.methods[m.spec];
        var map = setting.crf ? pixels[2 + n + k] : pixels[2 + k];
        if (!view.heat) { return; }
        view.pair.hidden = !map;
        view.note.hidden = Boolean(map);
        if (map) {
          drawHeat(view.heat, map);
          drawMask(view.mask, image, outline, map, setting.tau);
        } else {
          view.note.textContent = "no map for " + state.setting + " (" +
            (setting.crf ? "the run had no DenseCRF" : "not stored") + ")";
        }
      });
      entry.drawn = stamp;
    });
  }

  function iouStyle(node, value) {
    if (value === null || value === undefined) {
      node.textContent = "IoU \u2013 (not evaluated)";
      node.style.background = "#eee";
      return;
    }
    node.textContent = "IoU " + value.toFixed(3);
    node.style.background = "hsl(" + Math.round(120 * value) + ", 60%, 86%)";
  }
  function sortKey(g) {
    var a = (g.iou[state.a] || {})[state.setting] || [];
    var b = (g.iou[state.b] || {})[state.setting] || [];
    var known = function (v) { return v !== null && v !== undefined; };
    var keys = {
      order: function (i) { return i; },
      worst: function (i) { return known(a[i]) ? a[i] : Infinity; },
      best: function (i) { return known(a[i]) ? -a[i] : Infinity; },
      diff: function (i) { return known(a[i]) && known(b[i]) ? b[i] - a[i] : Infinity; },
      absdiff: function (i) { return known(a[i]) && known(b[i]) ? -Math.abs(a[i] - b[i]) : Infinity; }
    };
    return {key: keys[state.sort] || keys.order, a: a, b: b};
  }
  function matches(item) {
    if (state.filter) {
      var parts = state.filter.split(":");
      if (item.bins[parts[0]] !== parts.slice(1).join(":")) { return false; }
    }
    var q = state.q.trim().toLowerCase();
    return !q || item.text.toLowerCase().indexOf(q) >= 0 || item.id.toLowerCase() === q;
  }

  function build(g) {
    if (built[g.dataset]) { return built[g.dataset]; }
    built[g.dataset] = g.items.map(function (item, index) { return buildCard(g, item, index); });
    return built[g.dataset];
  }
  function header(g) {
    var head = byId("gallery-head");
    head.innerHTML = "";
    head.appendChild(element("div", "", "image, GT (green)"));
    g.methods.forEach(function (m) {
      var cell = element("div", "", m.spec + " (seed " + m.seed + ")");
      cell.title = m.spec + ": map (left), mask at the setting's \u03c4 (right)";
      head.appendChild(cell);
    });
    var note = byId("gallery-note");
    note.textContent = g.dataset + " " + g.split + ": the first " + g.n + " of " + g.n_evaluated +
      " evaluated expressions, in dataset order (report --gallery-n). " + DATA.explain;
    var missing = byId("gallery-missing");
    missing.innerHTML = "";
    g.methods.filter(function (m) { return m.command; }).forEach(function (m) {
      var line = element("div", "note", m.spec + ": map not saved (IoU only); to save it: ");
      line.appendChild(element("code", "", m.command));
      missing.appendChild(line);
    });
  }

  function apply() {
    var g = gallery();
    normalise(g);
    var cards = build(g);
    var list = byId("items");
    var sorter = sortKey(g);
    var order = g.items.map(function (_, i) { return i; });
    order.sort(function (x, y) { return (sorter.key(x) - sorter.key(y)) || (x - y); });
    var size = state.thumb + "px";
    [list, byId("gallery-head")].forEach(function (node) {
      node.style.setProperty("--thumb", size);
      node.style.setProperty("--first", size);
      node.style.setProperty("--col", "calc(2 * " + size + " + 3px)");
      node.style.setProperty("--methods", String(g.methods.length));
    });
    list.innerHTML = "";
    var visible = 0, first = "";
    order.forEach(function (i) {
      var entry = cards[i], item = g.items[i], shown = matches(item);
      entry.card.hidden = !shown;
      if (shown) { visible += 1; first = first || item.id; }
      entry.head.firstChild.textContent = shown ? "#" + visible + "  " : "";
      var delta = "";
      if ((state.sort === "diff" || state.sort === "absdiff") && sorter.key(i) !== Infinity) {
        var d = sorter.a[i] - sorter.b[i];
        delta = "  \u00b7 IoU(" + state.a + ") \u2212 IoU(" + state.b + ") = " +
          (d >= 0 ? "+" : "") + d.toFixed(3);
      }
      entry.head.lastChild.textContent = delta;
      g.methods.forEach(function (m) {
        iouStyle(cards[i].views.methods[m.spec].iou, ((g.iou[m.spec] || {})[state.setting] || [])[i]);
      });
      list.appendChild(entry.card);
    });
    byId("c-count").textContent = visible + " of " + g.items.length + " shown";
    status.setAttribute("data-dataset", g.dataset);
    status.setAttribute("data-items", String(g.items.length));
    status.setAttribute("data-visible", String(visible));
    status.setAttribute("data-first", first);
    status.setAttribute("data-errors", String(window.__errors.length));
    header(g);
    fillControls(g);
    writeHash();
    var rendered = 0;
    Promise.all(cards.map(function (entry) {
      return render(g, entry).then(function () {
        rendered += 1;
        status.setAttribute("data-rendered", String(rendered));
      });
    })).then(function () {
      if (!window.__errors.length) { status.textContent = "page script: ok"; }
    }).catch(function (error) { __reportError(error); });
  }

  function bind(id, key, event) {
    byId(id).addEventListener(event || "change", function (e) { state[key] = e.target.value; apply(); });
  }
  if (!DATA.galleries.length) {
    byId("gallery-controls").hidden = true;
    status.setAttribute("data-items", "0");
    status.setAttribute("data-visible", "0");
    status.textContent = "page script: ok (no gallery)";
    return;
  }
  var linked = window.location.hash.length > 1;   // a linked view opens at the gallery
  readHash();
  bind("c-dataset", "dataset");
  bind("c-setting", "setting");
  bind("c-sort", "sort");
  bind("c-a", "a");
  bind("c-b", "b");
  bind("c-filter", "filter");
  bind("c-q", "q", "input");
  bind("c-thumb", "thumb");
  window.addEventListener("hashchange", function () { readHash(); apply(); });
  apply();
  if (state.view === "gallery") {   // the gallery alone: tables, curves and runs hidden
    Array.prototype.forEach.call(document.querySelectorAll(".page-part"), function (node) {
      node.hidden = true; });
  } else if (linked) {
    byId("gallery").scrollIntoView();
  }
  status.setAttribute("data-ready", "1");
})();
"""
