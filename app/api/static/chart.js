/* A small SVG chart helper: lines, shaded bands, bars, markers and vertical rules on a time or number axis.
 *
 * TsChart.draw(container, {
 *   x: "time" | "number",               // time: x values are epoch milliseconds
 *   title, yLabel, xLabel, height,      // height in viewBox units (width is 900, scaled to the container)
 *   bands:  [{x: [], lower: [], upper: [], cls, label}],   // null entries break the band
 *   lines:  [{x: [], y: [], cls, label}],                  // null entries break the line
 *   bars:   [{x0: [], x1: [], y: [], cls, label}],
 *   points: [{x, y, cls, title}],                          // markers (e.g. anomalies), with a hover title
 *   pointsLabel, pointsClass,                              // legend entry for the markers
 *   vlines: [{x, cls, label}], hlines: [{y, cls, label}],
 *   integerX,                                              // only whole-number ticks on a number axis
 * })
 */
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  const WIDTH = 900;
  const MARGIN = { top: 34, right: 16, bottom: 34, left: 64 };

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(key, String(value));
    }
    if (parent) parent.appendChild(node);
    return node;
  }

  function finite(value) {
    return typeof value === "number" && Number.isFinite(value);
  }

  function niceStep(span, count) {
    const raw = span / Math.max(1, count);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const fraction = raw / power;
    const nice = fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10;
    return nice * power;
  }

  function numberTicks(min, max, count) {
    if (!(max > min)) return [min];
    const step = niceStep(max - min, count);
    const ticks = [];
    for (let value = Math.ceil(min / step) * step; value <= max + step * 1e-9; value += step) {
      ticks.push(Math.abs(value) < step * 1e-9 ? 0 : value);
    }
    return ticks;
  }

  const HOUR = 3600e3;
  const DAY = 24 * HOUR;
  const TIME_STEPS = [1e3, 5e3, 15e3, 60e3, 300e3, 900e3, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY,
    7 * DAY, 14 * DAY, 30 * DAY, 91 * DAY, 182 * DAY, 365 * DAY, 730 * DAY, 1826 * DAY];

  function timeTicks(min, max, count) {
    if (!(max > min)) return [min];
    const raw = (max - min) / Math.max(1, count);
    const step = TIME_STEPS.find((candidate) => candidate >= raw) || TIME_STEPS[TIME_STEPS.length - 1];
    const ticks = [];
    for (let value = Math.ceil(min / step) * step; value <= max; value += step) ticks.push(value);
    return ticks;
  }

  function formatTime(ms, span) {
    const iso = new Date(ms).toISOString();
    if (span > 20 * DAY) return iso.slice(0, 10);
    if (span > 2 * DAY) return iso.slice(5, 10) + " " + iso.slice(11, 16);
    return iso.slice(11, 16) + (span > 12 * HOUR ? " " + iso.slice(5, 10) : "");
  }

  function formatNumber(value) {
    if (!finite(value)) return "";
    const magnitude = Math.abs(value);
    if (magnitude >= 1e5 || (magnitude > 0 && magnitude < 1e-3)) return value.toExponential(1);
    return String(Number(value.toPrecision(4)));
  }

  function extent(values, into) {
    for (const value of values) {
      if (finite(value)) {
        into[0] = Math.min(into[0], value);
        into[1] = Math.max(into[1], value);
      }
    }
  }

  function segments(xs, ys, ys2) {
    const runs = [];
    let run = [];
    for (let i = 0; i < xs.length; i += 1) {
      const ok = finite(xs[i]) && finite(ys[i]) && (!ys2 || finite(ys2[i]));
      if (ok) run.push(i);
      else if (run.length) {
        runs.push(run);
        run = [];
      }
    }
    if (run.length) runs.push(run);
    return runs;
  }

  function draw(container, options) {
    const opts = Object.assign({ x: "number", height: 300, bands: [], lines: [], bars: [], points: [], vlines: [], hlines: [] }, options);
    container.textContent = "";
    const height = opts.height;
    const xr = [Infinity, -Infinity];
    const yr = [Infinity, -Infinity];
    for (const band of opts.bands) {
      extent(band.x, xr);
      extent(band.lower, yr);
      extent(band.upper, yr);
    }
    for (const line of opts.lines) {
      extent(line.x, xr);
      extent(line.y, yr);
    }
    for (const bar of opts.bars) {
      extent(bar.x0, xr);
      extent(bar.x1, xr);
      extent(bar.y, yr);
      yr[0] = Math.min(yr[0], 0);
    }
    for (const point of opts.points) {
      extent([point.x], xr);
      extent([point.y], yr);
    }
    for (const rule of opts.vlines) extent([rule.x], xr);
    for (const rule of opts.hlines) extent([rule.y], yr);

    const svg = el("svg", {
      class: "chart",
      viewBox: `0 0 ${WIDTH} ${height}`,
      role: "img",
      "aria-label": opts.title || "chart",
      preserveAspectRatio: "xMidYMid meet",
    });
    container.appendChild(svg);
    if (opts.title) el("text", { x: MARGIN.left, y: 16, class: "chart-title" }, svg).textContent = opts.title;
    if (!(xr[0] <= xr[1]) || !(yr[0] <= yr[1])) {
      el("text", { x: WIDTH / 2, y: height / 2, class: "chart-empty", "text-anchor": "middle" }, svg).textContent = "no data";
      return svg;
    }
    if (xr[0] === xr[1]) {
      xr[0] -= 1;
      xr[1] += 1;
    }
    if (yr[0] === yr[1]) {
      yr[0] -= 1;
      yr[1] += 1;
    }
    const pad = (yr[1] - yr[0]) * 0.05;
    if (!opts.bars.length || yr[0] < 0) yr[0] -= pad;
    yr[1] += pad;
    const plotW = WIDTH - MARGIN.left - MARGIN.right;
    const plotH = height - MARGIN.top - MARGIN.bottom;
    const sx = (value) => MARGIN.left + ((value - xr[0]) / (xr[1] - xr[0])) * plotW;
    const sy = (value) => MARGIN.top + (1 - (value - yr[0]) / (yr[1] - yr[0])) * plotH;

    const axes = el("g", { class: "axes" }, svg);
    for (const tick of numberTicks(yr[0], yr[1], 5)) {
      el("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: sy(tick), y2: sy(tick), class: "grid" }, axes);
      el("text", { x: MARGIN.left - 6, y: sy(tick) + 4, "text-anchor": "end", class: "tick" }, axes).textContent = formatNumber(tick);
    }
    const span = xr[1] - xr[0];
    let xticks = opts.x === "time" ? timeTicks(xr[0], xr[1], 6) : numberTicks(xr[0], xr[1], 8);
    if (opts.integerX) xticks = xticks.filter((tick) => Number.isInteger(tick));
    for (const tick of xticks) {
      el("line", { x1: sx(tick), x2: sx(tick), y1: MARGIN.top + plotH, y2: MARGIN.top + plotH + 4, class: "axis" }, axes);
      const label = opts.x === "time" ? formatTime(tick, span) : formatNumber(tick);
      el("text", { x: sx(tick), y: MARGIN.top + plotH + 18, "text-anchor": "middle", class: "tick" }, axes).textContent = label;
    }
    el("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: MARGIN.top + plotH, y2: MARGIN.top + plotH, class: "axis" }, axes);
    el("line", { x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: MARGIN.top + plotH, class: "axis" }, axes);
    if (opts.yLabel) {
      el("text", { x: 12, y: MARGIN.top + plotH / 2, class: "axis-label", transform: `rotate(-90 12 ${MARGIN.top + plotH / 2})`, "text-anchor": "middle" }, axes).textContent = opts.yLabel;
    }
    if (opts.xLabel) {
      el("text", { x: MARGIN.left + plotW / 2, y: height - 2, class: "axis-label", "text-anchor": "middle" }, axes).textContent = opts.xLabel;
    }

    const plot = el("g", { class: "plot" }, svg);
    for (const band of opts.bands) {
      for (const run of segments(band.x, band.lower, band.upper)) {
        const top = run.map((i) => `${sx(band.x[i]).toFixed(1)},${sy(band.upper[i]).toFixed(1)}`);
        const bottom = run.slice().reverse().map((i) => `${sx(band.x[i]).toFixed(1)},${sy(band.lower[i]).toFixed(1)}`);
        el("path", { d: `M${top.join("L")}L${bottom.join("L")}Z`, class: `band ${band.cls || ""}` }, plot);
      }
    }
    for (const bar of opts.bars) {
      bar.y.forEach((value, i) => {
        if (!finite(value)) return;
        const x0 = sx(bar.x0[i]);
        const x1 = sx(bar.x1[i]);
        const y = sy(Math.max(value, 0));
        el("rect", { x: x0, y, width: Math.max(0.5, x1 - x0 - 0.5), height: Math.max(0, sy(0) - y), class: `bar ${bar.cls || ""}` }, plot);
      });
    }
    for (const rule of opts.hlines) {
      if (finite(rule.y)) el("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: sy(rule.y), y2: sy(rule.y), class: `rule ${rule.cls || ""}` }, plot);
    }
    for (const rule of opts.vlines) {
      if (finite(rule.x)) el("line", { x1: sx(rule.x), x2: sx(rule.x), y1: MARGIN.top, y2: MARGIN.top + plotH, class: `rule ${rule.cls || ""}` }, plot);
    }
    for (const line of opts.lines) {
      for (const run of segments(line.x, line.y)) {
        const d = run.map((i, k) => `${k ? "L" : "M"}${sx(line.x[i]).toFixed(1)},${sy(line.y[i]).toFixed(1)}`).join("");
        el("path", { d: run.length === 1 ? d + "h1" : d, class: `line ${line.cls || ""}` }, plot);
      }
    }
    for (const point of opts.points) {
      if (!finite(point.x) || !finite(point.y)) continue;
      const marker = el("circle", { cx: sx(point.x), cy: sy(point.y), r: 4, class: `marker ${point.cls || ""}` }, plot);
      if (point.title) el("title", {}, marker).textContent = point.title;
    }

    const legendItems = [];
    for (const band of opts.bands) if (band.label) legendItems.push(["band " + (band.cls || ""), band.label, "rect"]);
    for (const bar of opts.bars) if (bar.label) legendItems.push(["bar " + (bar.cls || ""), bar.label, "rect"]);
    for (const line of opts.lines) if (line.label) legendItems.push(["line " + (line.cls || ""), line.label, "line"]);
    for (const rule of opts.vlines.concat(opts.hlines)) if (rule.label) legendItems.push(["rule " + (rule.cls || ""), rule.label, "line"]);
    if (opts.pointsLabel && opts.points.length) legendItems.push(["marker " + (opts.pointsClass || ""), opts.pointsLabel, "circle"]);
    const legend = el("g", { class: "legend" }, svg);
    let x = WIDTH - MARGIN.right;
    for (const [cls, label, shape] of legendItems.reverse()) {
      const width = 26 + label.length * 6.2;
      x -= width;
      const item = el("g", { transform: `translate(${x.toFixed(1)},${MARGIN.top - 16})` }, legend);
      if (shape === "rect") el("rect", { x: 0, y: -6, width: 14, height: 10, class: cls }, item);
      else if (shape === "circle") el("circle", { cx: 7, cy: -1, r: 4, class: cls }, item);
      else el("line", { x1: 0, x2: 14, y1: -1, y2: -1, class: cls }, item);
      el("text", { x: 18, y: 3, class: "legend-text" }, item).textContent = label;
    }
    return svg;
  }

  window.TsChart = { draw, formatNumber, formatTime };
})();
