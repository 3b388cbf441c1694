/* tswatch dashboard: a small single-page app over the REST API (hash routes, no build step, no dependencies).
 *
 * #/models            models, versions, aliases, test metrics vs baselines, training curves
 * #/model/NAME        recent data (or a pasted/uploaded CSV) with forecast bands and flagged anomalies
 * #/streams           live view of every stream (polled), open alarms and alarm history
 * #/webhooks          endpoints and delivery log, when the server has the webhooks API
 *
 * The API key is asked for once per browser session (sessionStorage) and sent as `Authorization: Bearer`.
 */
(function () {
  "use strict";

  const KEY_STORAGE = "tswatch.apiKey";
  const ROOT = location.pathname.replace(/\/ui(\/.*)?$/, "");
  const POLL_MS = 2000;
  const LEVELS = [80, 95];
  const state = { session: null, generation: 0, timers: [] };

  // ------------------------------------------------------------------ helpers
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const enc = encodeURIComponent;
  const fmt = (value) => (value === null || value === undefined ? "–" : window.TsChart.formatNumber(value));
  const time = (text) => (text ? String(text).replace("T", " ").replace(/(\.\d+)?(Z|\+00:00)$/, "") : "–");
  const toMs = (text) => Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(text) ? text : text + "Z");

  class ApiError extends Error {
    constructor(message, status, problem) {
      super(message);
      this.status = status;
      this.problem = problem;
    }
  }

  function apiKey() {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  }

  async function api(path, options) {
    const opts = options || {};
    const headers = { Accept: "application/json" };
    const key = apiKey();
    if (key) headers.Authorization = "Bearer " + key;
    let body;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers["Content-Type"] = "application/json";
    }
    const response = await fetch(ROOT + path, { method: opts.method || "GET", headers, body });
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (error) {
      data = text;
    }
    if (!response.ok) {
      const detail = data && data.detail ? data.detail : `${response.status} ${response.statusText}`;
      throw new ApiError(detail, response.status, data);
    }
    return data;
  }

  function showBanner(message, kind) {
    const banner = document.getElementById("banner");
    banner.textContent = message || "";
    banner.className = "banner " + (kind || "error");
    banner.hidden = !message;
  }

  function errorBox(error) {
    const status = error && error.status ? ` (HTTP ${error.status})` : "";
    return h("div", { class: "error-box", role: "alert" }, (error && error.message ? error.message : String(error)) + status);
  }

  function poll(fn, ms) {
    const generation = state.generation;
    const tick = async () => {
      if (generation !== state.generation) return;
      try {
        await fn();
      } catch (error) {
        showBanner(error.message);
      }
      if (generation === state.generation) state.timers.push(setTimeout(tick, ms));
    };
    state.timers.push(setTimeout(tick, ms));
  }

  // ------------------------------------------------------------------ session and key
  async function checkSession() {
    state.session = await api("/v1/ui/session");
    const who = document.getElementById("who");
    const session = state.session;
    if (!session.authenticated) who.textContent = "not signed in";
    else if (!session.auth_required) who.textContent = "open server (no API keys)";
    else who.textContent = `key ${session.key_id} · role ${session.role}`;
    document.getElementById("key-forget").hidden = !apiKey();
    return session;
  }

  function showKeyForm(problem) {
    const form = document.getElementById("key-form");
    form.hidden = false;
    document.getElementById("key-problem").textContent = problem || "";
    document.getElementById("view").textContent = "";
    document.getElementById("key-input").focus();
  }

  async function onKeySubmit(event) {
    event.preventDefault();
    const input = document.getElementById("key-input");
    const key = input.value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORAGE, key);
    input.value = "";
    const session = await checkSession();
    if (session.authenticated) {
      document.getElementById("key-form").hidden = true;
      route();
    } else {
      sessionStorage.removeItem(KEY_STORAGE);
      showKeyForm(session.problem);
    }
  }

  async function onForget() {
    sessionStorage.removeItem(KEY_STORAGE);
    const session = await checkSession();
    if (!session.authenticated) showKeyForm("");
    else route();
  }

  // ------------------------------------------------------------------ metrics and curves
  const FORECASTERS = [
    ["model", "model"],
    ["seasonal_naive", "seasonal naive"],
    ["random_walk", "random walk"],
  ];

  function metricsTable(versions) {
    const rows = [];
    for (const v of versions) {
      const all = { model: v.metrics, ...(v.baselines || {}) };
      const best = Math.min(...FORECASTERS.map(([key]) => (all[key] ? all[key].mae : Infinity)));
      FORECASTERS.forEach(([key, label], index) => {
        const m = all[key];
        if (!m) return;
        rows.push(
          h("tr", { class: (index === 0 ? "version-first " : "") + (key === "model" ? "is-model" : "is-baseline") },
            index === 0 ? h("td", { rowspan: 3 }, `v${v.version}`) : null,
            index === 0 ? h("td", { rowspan: 3 }, (v.aliases || []).join(", ") || "–") : null,
            index === 0 ? h("td", { rowspan: 3 }, time(v.created_at).slice(0, 16)) : null,
            h("td", {}, label),
            h("td", { class: "num" + (m.mae === best ? " best" : "") }, fmt(m.mae)),
            h("td", { class: "num" }, fmt(m.rmse)),
            h("td", { class: "num" }, fmt(m.mase_seasonal)),
            h("td", { class: "num" }, fmt(m.mase_random_walk))));
      });
    }
    return h("table", { class: "metrics" },
      h("thead", {}, h("tr", {}, ["version", "aliases", "created (UTC)", "forecaster", "MAE", "RMSE", "MASE (seasonal)", "MASE (random walk)"].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows));
  }

  function drawCurves(box, training) {
    const history = (training && training.history) || [];
    const epochs = history.map((r) => r.epoch);
    window.TsChart.draw(box, {
      x: "number",
      integerX: true,
      height: 220,
      xLabel: "epoch",
      yLabel: "pinball loss",
      lines: [
        { x: epochs, y: history.map((r) => r.train_loss), cls: "line-train", label: "train" },
        { x: epochs, y: history.map((r) => r.val_loss), cls: "line-val", label: "validation" },
      ],
      vlines: training && training.best_epoch ? [{ x: training.best_epoch, cls: "rule-best", label: `best epoch ${training.best_epoch}` }] : [],
    });
  }

  function drawResiduals(box, residuals) {
    if (!residuals) {
      box.append(h("p", { class: "muted" }, "This version's manifest has no residual histogram (retrain to store one)."));
      return;
    }
    // No flagging thresholds here: detection calibrates its flags on the series it scores, not on these
    // validation residuals, so the histogram only pictures the forecaster's validation errors.
    const edges = residuals.edges;
    window.TsChart.draw(box, {
      x: "number",
      height: 200,
      xLabel: "validation residual / forecast spread",
      bars: [{ x0: edges.slice(0, -1), x1: edges.slice(1), y: residuals.counts, cls: "bar-residual", label: "residuals" }],
    });
  }

  // ------------------------------------------------------------------ pages: models
  async function modelsPage(view) {
    view.append(h("h1", {}, "Models"));
    const models = await api("/v1/models");
    if (!models.length) {
      view.append(h("p", { class: "empty" }, "No models registered yet. Train one with `tswatch train DATA --name NAME`."));
      return;
    }
    for (const summary of models) {
      const card = h("section", { class: "card model-card", "data-model": summary.name });
      view.append(card);
      const detail = await api(`/v1/models/${enc(summary.name)}`);
      const aliases = Object.entries(detail.aliases).map(([alias, version]) => `${alias} → v${version}`).join(", ") || "none";
      const curves = h("div", { class: "chart-box curves" });
      card.append(
        h("h2", {}, h("a", { href: `#/model/${enc(summary.name)}`, class: "model-link" }, summary.name)),
        h("p", { class: "muted" }, `${detail.versions.length} version(s); default v${detail.default_version}; aliases: ${aliases}`),
        metricsTable(detail.version_details),
        h("h3", {}, `Training curves (v${detail.default_version})`),
        curves);
      const version = await api(`/v1/models/${enc(summary.name)}/versions/${detail.default_version}`);
      drawCurves(curves, version.manifest.training);
    }
  }

  // ------------------------------------------------------------------ CSV
  function parseCsv(text) {
    const lines = text.split(/\r?\n/).map((line) => line.trim());
    const rows = [];
    let delimiter = null;
    let header = null;
    let columns = null;
    lines.forEach((line, index) => {
      if (!line || line.startsWith("#")) return;
      if (delimiter === null) delimiter = line.includes("\t") ? "\t" : line.includes(";") ? ";" : ",";
      const cells = line.split(delimiter).map((cell) => cell.trim().replace(/^"(.*)"$/, "$1"));
      if (columns === null) {
        const numeric = cells.length && Number.isFinite(Number(cells[cells.length - 1])) && cells[cells.length - 1] !== "";
        if (!numeric) {
          header = cells.map((cell) => cell.toLowerCase());
          const timeCol = header.findIndex((c) => ["timestamp", "time", "date", "ts", "datetime"].includes(c));
          const valueCol = header.findIndex((c) => ["value", "y", "values"].includes(c));
          columns = {
            time: timeCol >= 0 ? timeCol : cells.length > 1 ? 0 : -1,
            value: valueCol >= 0 ? valueCol : cells.length - 1,
          };
          return;
        }
        columns = { time: cells.length > 1 ? 0 : -1, value: cells.length - 1 };
      }
      const raw = cells[columns.value];
      const value = Number(raw);
      if (raw === undefined || raw === "" || !Number.isFinite(value)) {
        throw new Error(`CSV line ${index + 1}: value ${JSON.stringify(raw === undefined ? "" : raw)} is not a finite number`);
      }
      let stamp = null;
      if (columns.time >= 0) {
        const cell = cells[columns.time] || "";
        const iso = cell.includes("T") || !cell.includes(" ") ? cell : cell.replace(" ", "T");
        const ms = toMs(iso);
        if (!Number.isFinite(ms)) throw new Error(`CSV line ${index + 1}: timestamp ${JSON.stringify(cell)} is not an ISO 8601 date/time`);
        stamp = ms;
      }
      rows.push([stamp, value, index + 1]);
    });
    if (!rows.length) throw new Error("the CSV has no data rows; expected `timestamp,value` lines");
    const withTimes = rows[0][0] !== null;
    if (withTimes) {
      for (let i = 1; i < rows.length; i += 1) {
        if (rows[i][0] <= rows[i - 1][0]) throw new Error(`CSV line ${rows[i][2]}: timestamps must strictly increase`);
      }
    }
    return {
      source: "csv",
      timestamps: withTimes ? rows.map((row) => new Date(row[0]).toISOString().replace(".000Z", "Z")) : null,
      values: rows.map((row) => row[1]),
    };
  }

  // ------------------------------------------------------------------ pages: one model
  async function modelPage(view, name) {
    const detail = await api(`/v1/models/${enc(name)}`);
    const page = { name, detail, data: null, csv: null, version: detail.default_version, manifest: null };
    const versionSelect = h("select", { id: "version-select" },
      detail.versions.map((v) => h("option", { value: v, selected: v === page.version }, `v${v}` + (Object.entries(detail.aliases).filter(([, t]) => t === v).map(([a]) => ` (${a})`).join("")))));
    const horizonInput = h("input", { id: "horizon-input", type: "number", min: 1, value: 1, step: 1 });
    const sensitivityInput = h("input", { id: "sensitivity-input", type: "range", min: 0, max: 1, step: 0.05, value: 0.5 });
    const sensitivityOut = h("output", { id: "sensitivity-value" }, "0.50");
    const csvText = h("textarea", { id: "csv-input", rows: 5, placeholder: "timestamp,value\n2024-01-01T00:00:00Z,10.2\n…" });
    const csvFile = h("input", { id: "csv-file", type: "file", accept: ".csv,.tsv,.txt,text/csv" });
    const status = h("p", { id: "model-status", class: "muted" });
    const chart = h("div", { id: "forecast-chart", class: "chart-box" });
    const anomalies = h("div", { id: "anomaly-list" });
    const versionInfo = h("div", { id: "version-info" });

    view.append(
      h("p", {}, h("a", { href: "#/models" }, "← Models")),
      h("h1", {}, name),
      h("form", { class: "controls", id: "model-controls", onsubmit: (e) => { e.preventDefault(); refresh(); } },
        h("label", {}, "Version ", versionSelect),
        h("label", {}, "Horizon ", horizonInput),
        h("label", {}, "Sensitivity ", sensitivityInput, " ", sensitivityOut),
        h("button", { type: "submit", id: "refresh-button" }, "Forecast & detect")),
      h("section", { class: "card" }, h("h2", {}, "Data, forecast and anomalies"), status, chart, anomalies),
      h("section", { class: "card" },
        h("h2", {}, "Score your own data"),
        h("p", { class: "muted" }, "Paste or upload a CSV with `timestamp,value` columns (ISO 8601 times, UTC unless an offset is given; a header row is optional). It is parsed in the browser and sent to the forecast and detect endpoints."),
        csvText,
        h("div", { class: "row" }, csvFile,
          h("button", { type: "button", id: "csv-score", onclick: () => useCsv(csvText.value) }, "Score CSV"),
          h("button", { type: "button", id: "csv-clear", onclick: () => { page.csv = null; csvText.value = ""; refresh(); } }, "Back to recent data"))),
      h("section", { class: "card" }, versionInfo));

    sensitivityInput.addEventListener("input", () => { sensitivityOut.textContent = Number(sensitivityInput.value).toFixed(2); });
    sensitivityInput.addEventListener("change", () => refresh());
    versionSelect.addEventListener("change", async () => {
      page.version = Number(versionSelect.value);
      page.data = null;
      await loadVersion();
      refresh();
    });
    csvFile.addEventListener("change", async () => {
      const file = csvFile.files && csvFile.files[0];
      if (!file) return;
      csvText.value = await file.text();
      useCsv(csvText.value);
    });

    function useCsv(text) {
      try {
        page.csv = parseCsv(text);
      } catch (error) {
        status.textContent = "";
        chart.textContent = "";
        anomalies.textContent = "";
        chart.append(errorBox(error));
        return;
      }
      refresh();
    }

    async function loadVersion() {
      const version = await api(`/v1/models/${enc(name)}/versions/${page.version}`);
      page.manifest = version.manifest;
      const spec = page.manifest.spec;
      horizonInput.max = spec.horizon * 10;  // beyond spec.horizon the server forecasts recursively (app/serving/recursion.py)
      if (!Number(horizonInput.value) || Number(horizonInput.value) > spec.horizon * 10 || horizonInput.dataset.touched !== "1") horizonInput.value = spec.horizon;
      const summary = detail.version_details.filter((v) => v.version === page.version);
      const curves = h("div", { class: "chart-box curves" });
      const residuals = h("div", { class: "chart-box residuals" });
      versionInfo.textContent = "";
      versionInfo.append(
        h("h2", {}, `Version ${page.version}`),
        h("p", { class: "muted" },
          `${spec.network.cell.toUpperCase()} ${spec.network.num_layers}×${spec.network.hidden_size}, window ${spec.window}, horizon ${spec.horizon}, frequency ${spec.frequency}, ` +
          `calendar ${(spec.calendar_features || []).join(", ") || "none"}; trained on ${page.manifest.data.source} (${page.manifest.data.rows} rows)`),
        metricsTable(summary),
        h("h3", {}, "Training curves"), curves,
        h("h3", {}, "Validation residuals"), residuals);
      drawCurves(curves, page.manifest.training);
      drawResiduals(residuals, page.manifest.report && page.manifest.report.residuals);
    }
    horizonInput.addEventListener("change", () => { horizonInput.dataset.touched = "1"; refresh(); });

    async function refresh() {
      status.textContent = "Loading…";
      anomalies.textContent = "";
      try {
        let data = page.csv;
        if (!data) {
          if (!page.data) page.data = await api(`/v1/ui/models/${enc(name)}/recent?version=${page.version}`);
          data = { source: "recent", timestamps: page.data.timestamps, values: page.data.values, series: page.data.series };
        }
        await render(data);
      } catch (error) {
        status.textContent = "";
        chart.textContent = "";
        chart.append(errorBox(error));
      }
    }

    async function render(data) {
      const spec = page.manifest.spec;
      const seriesId = data.series || "series";
      const series = { id: seriesId, values: data.values };
      if (data.timestamps) series.timestamps = data.timestamps;
      const horizon = Math.max(1, Math.min(spec.horizon, Number(horizonInput.value) || spec.horizon));
      const sensitivity = Number(sensitivityInput.value);
      const query = `?version=${page.version}`;
      const forecast = await api(`/v1/models/${enc(name)}/forecast${query}`, { method: "POST", body: { series: [series], horizon, levels: LEVELS } });
      let detection = null;
      let detectNote = "";
      const learning = 100;  // the detector's default learning period: a detect request needs more readings
      if (data.values.length > learning) {
        detection = await api(`/v1/models/${enc(name)}/detect${query}`, { method: "POST", body: { series: [series], sensitivity } });
      } else {
        detectNote = ` Anomaly scoring needs more than ${learning} points (the detector's learning period); this data has ${data.values.length}.`;
      }
      const f = forecast.forecasts[0];
      const useTime = Boolean(data.timestamps);
      const xs = useTime ? data.timestamps.map(toMs) : data.values.map((_, i) => i);
      const fx = useTime && f.timestamps ? f.timestamps.map(toMs) : f.mean.map((_, i) => data.values.length + i);
      const lastX = xs[xs.length - 1];
      const lastY = data.values[data.values.length - 1];
      const bands = [];
      const lines = [{ x: xs, y: data.values, cls: "line-actual", label: "data" }];
      const points = [];
      if (detection) {
        const p = detection.results[0].points;
        bands.push({ x: xs, lower: p.map((q) => q.lower), upper: p.map((q) => q.upper), cls: "band-detect", label: "one-step 80% band" });
        for (const q of p) {
          if (q.is_anomaly) {
            points.push({ x: xs[q.index], y: q.value, cls: "anomaly", title: `${q.timestamp ? time(q.timestamp) : "#" + q.index}: ${fmt(q.value)} (expected ${fmt(q.expected)}, score ${fmt(q.score)})` });
          }
        }
      }
      for (const interval of f.intervals.slice().sort((a, b) => b.level - a.level)) {
        bands.push({ x: [lastX, ...fx], lower: [lastY, ...interval.lower], upper: [lastY, ...interval.upper], cls: `band-forecast band-${interval.level}`, label: `forecast ${interval.level}%` });
      }
      lines.push({ x: [lastX, ...fx], y: [lastY, ...f.mean], cls: "line-forecast", label: "forecast (median)" });
      window.TsChart.draw(chart, {
        x: useTime ? "time" : "number",
        height: 340,
        bands,
        lines,
        points,
        pointsLabel: "anomaly",
        pointsClass: "anomaly",
        vlines: [{ x: lastX, cls: "rule-now" }],
      });
      const flagged = detection ? detection.results[0].anomalies : 0;
      const source = data.source === "csv" ? "your CSV" : `the last ${data.values.length} values of series "${seriesId}" stored with v${page.version}`;
      status.textContent = `${data.values.length} points from ${source}; forecast ${horizon} step(s) by ${forecast.model.name} v${forecast.model.version}` +
        (detection ? `; ${flagged} anomal${flagged === 1 ? "y" : "ies"} flagged at sensitivity ${sensitivity.toFixed(2)} (false-alarm rate ${fmt(detection.alpha)} per point).` : ".") + detectNote;
      if (detection && flagged) {
        const rows = detection.results[0].points.filter((q) => q.is_anomaly).slice(-50).map((q) =>
          h("tr", {}, h("td", {}, q.timestamp ? time(q.timestamp) : `#${q.index}`), h("td", { class: "num" }, fmt(q.value)), h("td", { class: "num" }, fmt(q.expected)),
            h("td", { class: "num" }, `${fmt(q.lower)} … ${fmt(q.upper)}`), h("td", { class: "num" }, fmt(q.score)), h("td", {}, q.direction || "")));
        anomalies.append(h("table", { class: "anomalies" },
          h("thead", {}, h("tr", {}, ["time", "value", "expected", "80% band", "score", "direction"].map((c) => h("th", {}, c)))),
          h("tbody", {}, rows)));
      }
    }

    await loadVersion();
    await refresh();
  }

  // ------------------------------------------------------------------ pages: streams
  async function streamsPage(view) {
    const updated = h("span", { id: "streams-updated", class: "muted" });
    const list = h("div", { id: "stream-list" });
    view.append(h("h1", {}, "Streams ", h("span", { class: "live" }, "● live"), " ", updated), list);
    const cards = new Map();

    async function update() {
      const streams = await api("/v1/ui/streams");
      const ids = new Set(streams.map((s) => s.id));
      for (const [id, card] of cards) {
        if (!ids.has(id)) {
          card.remove();
          cards.delete(id);
        }
      }
      if (!streams.length) {
        list.textContent = "";
        list.append(h("p", { class: "empty" }, "No streams yet. Create one with PUT /v1/streams/{id} and append points with POST /v1/streams/{id}/points."));
      } else {
        const empty = list.querySelector(".empty");
        if (empty) empty.remove();
      }
      for (const stream of streams) {
        let card = cards.get(stream.id);
        if (!card) {
          card = h("section", { class: "card stream-card" });
          card.dataset.stream = stream.id;
          cards.set(stream.id, card);
          list.append(card);
        }
        const [points, episodes] = await Promise.all([
          api(`/v1/ui/streams/${enc(stream.id)}/points?limit=300`),
          api(`/v1/streams/${enc(stream.id)}/anomalies`),
        ]);
        renderStream(card, stream, points, episodes);
      }
      updated.textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
      showBanner("");
    }

    await update();
    poll(update, POLL_MS);
  }

  function renderStream(card, stream, points, episodes) {
    const open = stream.open_alarms > 0;
    card.classList.toggle("alarm", open);
    const binding = stream.version ? `v${stream.version} (pinned)` : stream.alias ? `@${stream.alias}` : "default version";
    const xs = points.map((p) => toMs(p.timestamp));
    const flagged = points.filter((p) => p.is_anomaly);
    const last = points[points.length - 1];
    const alpha = Math.pow(10, 3 * stream.sensitivity - 4);
    const valueChart = h("div", { class: "chart-box stream-values" });
    const scoreChart = h("div", { class: "chart-box stream-scores" });
    const history = episodes.slice().reverse().slice(0, 20).map((e) =>
      h("tr", { class: e.resolved_at ? "resolved" : "open" },
        h("td", {}, e.resolved_at ? "resolved" : "OPEN"), h("td", {}, time(e.started_at)), h("td", {}, time(e.opened_at)),
        h("td", {}, time(e.resolved_at)), h("td", { class: "num" }, fmt(e.peak_score)), h("td", { class: "num" }, fmt(e.peak_value)),
        h("td", { class: "num" }, fmt(e.peak_expected)), h("td", {}, e.direction || ""), h("td", { class: "num" }, `${e.n_flagged}/${e.n_points}`)));
    card.textContent = "";
    card.append(
      h("h2", {}, stream.id, " ", h("span", { class: "badge " + (open ? "badge-alarm" : "badge-ok") }, open ? "alarm open" : "no open alarm")),
      h("p", { class: "muted" },
        (stream.model === null ? "self-learning stream; " : `model ${stream.model} ${binding}, scored by v${stream.state_model_version ?? "–"}; `) + `sensitivity ${stream.sensitivity} (false-alarm rate ${fmt(alpha)}); ` +
        `${stream.point_count} points, last ${time(stream.last_timestamp)}; ${flagged.length} flagged in the last ${points.length}; ${stream.episodes} alarm episode(s)`),
      last ? h("p", { class: "latest" }, `latest: ${fmt(last.value)} (expected ${fmt(last.expected)}, band ${fmt(last.lower)} … ${fmt(last.upper)}, score ${fmt(last.score)})`) : null,
      valueChart,
      scoreChart,
      h("h3", {}, "Alarm history"),
      episodes.length
        ? h("table", { class: "episodes" },
          h("thead", {}, h("tr", {}, ["state", "started", "opened", "resolved", "peak score", "peak value", "expected", "direction", "flagged/points"].map((c) => h("th", {}, c)))),
          h("tbody", {}, history))
        : h("p", { class: "muted" }, "No alarms yet."));
    window.TsChart.draw(valueChart, {
      x: "time",
      height: 240,
      bands: [{ x: xs, lower: points.map((p) => p.lower), upper: points.map((p) => p.upper), cls: "band-detect", label: "forecast 80% band" }],
      lines: [
        { x: xs, y: points.map((p) => p.expected), cls: "line-expected", label: "expected" },
        { x: xs, y: points.map((p) => p.value), cls: "line-actual", label: "value" },
      ],
      points: flagged.map((p) => ({ x: toMs(p.timestamp), y: p.value, cls: "anomaly", title: `${time(p.timestamp)}: ${fmt(p.value)} (score ${fmt(p.score)})` })),
      pointsLabel: "anomaly",
      pointsClass: "anomaly",
    });
    window.TsChart.draw(scoreChart, {
      x: "time",
      height: 130,
      yLabel: "score",
      lines: [{ x: xs, y: points.map((p) => p.score), cls: "line-score", label: "anomaly score" }],
      hlines: [{ y: 0 }],  // no fixed flag line: each stream calibrates its flags on its own scores
    });
  }

  // ------------------------------------------------------------------ pages: webhooks
  function listOf(data) {
    if (Array.isArray(data)) return data;
    for (const key of ["items", "endpoints", "data", "deliveries", "results"]) {
      if (data && Array.isArray(data[key])) return data[key];
    }
    return [];
  }

  function genericTable(items, preferred, cls) {
    if (!items.length) return h("p", { class: "muted" }, "None.");
    const keys = preferred.filter((k) => items.some((item) => k in item));
    for (const item of items) {
      for (const [key, value] of Object.entries(item)) {
        if (!keys.includes(key) && (value === null || typeof value !== "object") && keys.length < 10 && key !== "secret") keys.push(key);
      }
    }
    const cell = (value) => (value === null || value === undefined ? "–" : Array.isArray(value) ? value.join(", ") : typeof value === "object" ? JSON.stringify(value) : String(value));
    return h("table", { class: cls },
      h("thead", {}, h("tr", {}, keys.map((k) => h("th", {}, k.replace(/_/g, " "))))),
      h("tbody", {}, items.map((item) => h("tr", {}, keys.map((k) => h("td", {}, cell(item[k])))))));
  }

  async function webhooksPage(view) {
    view.append(h("h1", {}, "Webhooks"));
    const session = state.session;
    if (!session.features.webhooks) {
      view.append(h("section", { class: "card placeholder", id: "webhooks-placeholder" },
        h("p", {}, "Webhooks are not configured on this server: it exposes no /v1/webhooks API."),
        h("p", { class: "muted" }, "Stream alarms can still be followed on the Streams page or polled from GET /v1/streams/{id}/anomalies.")));
      return;
    }
    // The webhooks API is admin-only (app/api/routes/webhooks.py); ask only with a key that can read it.
    if (session.role !== "admin") {
      view.append(h("section", { class: "card placeholder", id: "webhooks-forbidden" },
        h("p", {}, `Webhook endpoints and their delivery log need an admin key; this key has role ${session.role}.`)));
      return;
    }
    let endpoints;
    try {
      endpoints = listOf(await api("/v1/webhooks"));
    } catch (error) {
      view.append(errorBox(error));
      return;
    }
    const deliveriesRoute = (session.webhook_routes || []).find((path) => /^\/v1\/webhooks\/\{[^}]+\}\/deliveries$/.test(path));
    const states = endpoints.map((e) => Object.assign({}, e, {
      state: e.enabled ? (e.consecutive_failures ? `enabled, ${e.consecutive_failures} failure(s) in a row` : "enabled") : `disabled ${time(e.disabled_at)}`,
    }));
    view.append(h("section", { class: "card", id: "webhook-endpoints" }, h("h2", {}, "Endpoints"),
      endpoints.length
        ? genericTable(states, ["id", "url", "state", "disabled_reason", "events", "streams", "description", "created_at"], "webhooks")
        : h("p", { class: "muted" }, "No webhook endpoints yet. Register one with POST /v1/webhooks.")));
    for (const endpoint of endpoints) {
      const box = h("section", { class: "card webhook-card" }, h("h2", {}, `Delivery log: ${endpoint.url || endpoint.id}`));
      view.append(box);
      if (!deliveriesRoute || !endpoint.id) {
        box.append(h("p", { class: "muted" }, "This server has no delivery log route."));
        continue;
      }
      try {
        const deliveries = listOf(await api(deliveriesRoute.replace(/\{[^}]+\}/, enc(endpoint.id)))).map((d) => {
          const attempts = Array.isArray(d.attempts) ? d.attempts : [];
          const last = attempts[attempts.length - 1];
          return Object.assign({}, d, {
            attempts: attempts.length,
            last_attempt: last ? `${last.success ? "ok" : "failed"} ${last.status_code ?? ""} ${last.error || ""} at ${time(last.attempted_at)}`.replace(/\s+/g, " ") : "–",
          });
        });
        box.append(genericTable(deliveries, ["id", "event_type", "status", "attempts", "last_attempt", "created_at", "next_attempt_at"], "deliveries"));
      } catch (error) {
        box.append(errorBox(error));
      }
    }
  }

  // ------------------------------------------------------------------ router
  async function route() {
    state.generation += 1;
    for (const timer of state.timers) clearTimeout(timer);
    state.timers = [];
    showBanner("");
    const root = document.getElementById("view");
    root.textContent = "";
    // each visit renders into a fresh container: a slow, superseded page keeps writing into a detached one
    const view = h("div", { class: "page" });
    root.append(view);
    if (!state.session || !state.session.authenticated) {
      showKeyForm(state.session && state.session.problem);
      return;
    }
    const hash = location.hash || "#/models";
    const [, page, arg] = hash.match(/^#\/([^/]*)\/?(.*)$/) || [null, "models", ""];
    for (const link of document.querySelectorAll("nav a")) {
      link.classList.toggle("active", link.dataset.nav === (page === "model" ? "models" : page));
    }
    const generation = state.generation;
    root.setAttribute("aria-busy", "true");
    try {
      if (page === "model" && arg) await modelPage(view, decodeURIComponent(arg));
      else if (page === "streams") await streamsPage(view);
      else if (page === "webhooks") await webhooksPage(view);
      else await modelsPage(view);
    } catch (error) {
      if (generation !== state.generation) return;
      if (error.status === 401) {
        sessionStorage.removeItem(KEY_STORAGE);
        await checkSession();
        showKeyForm(error.message);
        return;
      }
      view.append(errorBox(error));
    } finally {
      if (generation === state.generation) {
        root.removeAttribute("aria-busy");
        root.dataset.page = page || "models";
      }
    }
  }

  async function start() {
    document.getElementById("key-form").addEventListener("submit", (event) => {
      onKeySubmit(event).catch((error) => showBanner(error.message));
    });
    document.getElementById("key-forget").addEventListener("click", () => {
      onForget().catch((error) => showBanner(error.message));
    });
    window.addEventListener("hashchange", () => {
      route().catch((error) => showBanner(error.message));
    });
    try {
      await checkSession();
    } catch (error) {
      showBanner("cannot reach the server: " + error.message);
      return;
    }
    await route();
  }

  window.tswatchDashboard = { parseCsv };
  document.addEventListener("DOMContentLoaded", () => {
    start().catch((error) => showBanner(error.message));
  });
})();
