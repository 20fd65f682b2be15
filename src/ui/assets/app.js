// Sextant's web UI: the expression browser's history (localStorage), its
// table tab (fetched from /api/v1/query) and graph errors. Everything from
// the server or the user is put in the page as text (textContent), never as
// HTML.
(function () {
  "use strict";

  var HISTORY_KEY = "sextant.queryHistory";
  var HISTORY_MAX = 50;

  function loadHistory() {
    try {
      var list = JSON.parse(window.localStorage.getItem(HISTORY_KEY) || "[]");
      return Array.isArray(list) ? list.filter(function (s) { return typeof s === "string"; }) : [];
    } catch (e) {
      return [];
    }
  }

  function saveHistory(list) {
    try {
      window.localStorage.setItem(HISTORY_KEY, JSON.stringify(list.slice(0, HISTORY_MAX)));
    } catch (e) { /* storage disabled: no history */ }
  }

  function remember(expr) {
    var list = loadHistory().filter(function (s) { return s !== expr; });
    list.unshift(expr);
    saveHistory(list);
  }

  function showHistory() {
    var ul = document.getElementById("history");
    if (!ul) { return; }
    ul.textContent = "";
    var list = loadHistory();
    var range = document.getElementById("range");
    list.forEach(function (expr) {
      var params = new URLSearchParams();
      params.set("expr", expr);
      if (range) { params.set("range", range.value); }
      var a = document.createElement("a");
      a.href = "/graph?" + params.toString();
      a.textContent = expr;
      var li = document.createElement("li");
      li.appendChild(a);
      ul.appendChild(li);
    });
    if (list.length === 0) {
      var empty = document.createElement("li");
      empty.className = "muted";
      empty.textContent = "No queries yet.";
      ul.appendChild(empty);
    }
  }

  function showError(text) {
    var p = document.getElementById("query-error");
    if (!p) { return; }
    p.textContent = text;
    p.hidden = false;
  }

  // name{a="1", b="2"}, as Prometheus shows series.
  function seriesName(metric) {
    var name = metric.__name__ || "";
    var labels = Object.keys(metric).filter(function (k) { return k !== "__name__"; }).sort()
      .map(function (k) { return k + "=" + JSON.stringify(metric[k]); });
    return name + "{" + labels.join(", ") + "}";
  }

  function row(table, cells) {
    var tr = document.createElement("tr");
    cells.forEach(function (cell) {
      var td = document.createElement("td");
      td.className = cell[0];
      td.textContent = cell[1];
      tr.appendChild(td);
    });
    table.appendChild(tr);
  }

  function fillTable(data, table) {
    var result = data.result;
    var head = document.createElement("tr");
    ["Series", "Value"].forEach(function (h) {
      var th = document.createElement("th");
      th.textContent = h;
      head.appendChild(th);
    });
    table.appendChild(head);
    switch (data.resultType) {
      case "vector":
        result.forEach(function (s) { row(table, [["series", seriesName(s.metric)], ["value", s.value[1]]]); });
        return result.length;
      case "matrix":
        result.forEach(function (s) {
          var values = (s.values || []).map(function (p) { return p[1] + " @" + p[0]; }).join("\n");
          row(table, [["series", seriesName(s.metric)], ["value", values]]);
        });
        return result.length;
      case "scalar":
      case "string":
        row(table, [["series", data.resultType], ["value", result[1]]]);
        return 1;
      default:
        return 0;
    }
  }

  function runTable(panel) {
    var status = document.getElementById("table-status");
    var table = document.getElementById("result-table");
    var started = window.performance.now();
    fetch(panel.getAttribute("data-query"), { headers: { "Accept": "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (body) {
        var took = Math.round(window.performance.now() - started);
        if (body.status !== "success") {
          status.textContent = "";
          showError("Error (" + body.errorType + "): " + body.error);
          return;
        }
        var n = fillTable(body.data, table);
        status.textContent = (n === 0 ? "Empty result" : n + " result" + (n === 1 ? "" : "s")) + " · " + took + " ms";
        status.setAttribute("data-done", "true");
        (body.warnings || []).concat(body.infos || []).forEach(function (w) {
          var p = document.createElement("p");
          p.className = "muted";
          p.textContent = w;
          status.parentNode.insertBefore(p, status.nextSibling);
        });
      })
      .catch(function (e) { showError("The query failed: " + e); });
  }

  function watchGraph(img) {
    var explain = function () {
      fetch(img.src)
        .then(function (response) { return response.json(); })
        .then(function (body) { showError("Error (" + body.errorType + "): " + body.error); })
        .catch(function () { showError("The graph could not be drawn."); });
    };
    img.addEventListener("error", explain);
    if (img.complete && img.naturalWidth === 0) { explain(); }
  }

  function init() {
    var expr = document.getElementById("expr");
    if (!expr) { return; }
    var form = document.getElementById("query-form");
    // Enter runs the query; Shift+Enter starts a new line.
    expr.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey) {
        e.preventDefault();
        form.submit();
      }
    });
    if (expr.value.trim() !== "") { remember(expr.value); }
    showHistory();
    var clear = document.getElementById("clear-history");
    if (clear) {
      clear.addEventListener("click", function () { saveHistory([]); showHistory(); });
    }
    var panel = document.getElementById("table-panel");
    if (panel) { runTable(panel); }
    var img = document.getElementById("graph-img");
    if (img) { watchGraph(img); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
