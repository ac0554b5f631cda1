// relay: small enhancements over pages that work without JavaScript.
// Live updates (Server-Sent Events) of the list, the queue and a message's deliveries,
// row clicks, select-all, confirmations, local times, the release preview as you type.
(function () {
  "use strict";
  const body = document.body;

  // Not today: the day and time; a <time data-short> (the list's column) leaves out the
  // year this year, and the time before this year.
  function dayAndTime(when, now, short) {
    const thisYear = when.getFullYear() === now.getFullYear();
    const day = { month: "short", day: "numeric" };
    if (!short || !thisYear) day.year = "numeric";
    if (short && !thisYear) return when.toLocaleDateString([], day);
    return when.toLocaleString([], Object.assign(day, { hour: "2-digit", minute: "2-digit" }));
  }

  function localTimes(root) {
    const now = new Date();
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      const when = new Date(el.getAttribute("datetime"));
      if (isNaN(when)) return;
      const sameDay = when.toDateString() === now.toDateString();
      el.textContent = sameDay
        ? when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
        : dayAndTime(when, now, el.hasAttribute("data-short"));
      el.title = when.toLocaleString();
    });
  }

  function wireRows(root) {
    root.querySelectorAll("tr.row").forEach(function (row) {
      if (row.dataset.wired) return;
      row.dataset.wired = "1";
      row.addEventListener("click", function (event) {
        if (event.target.closest("a, input, label, button")) return;
        const link = row.querySelector("td.subject a");
        if (link) window.location.href = link.href;
      });
    });
  }

  function updateBulkButtons() {
    const any = document.querySelector("input[name=ids][form=bulk]:checked") !== null;
    document.querySelectorAll("#bulk button").forEach(function (b) { b.disabled = !any; });
  }

  document.addEventListener("change", function (event) {
    if (event.target.id === "select-all") {
      document.querySelectorAll("input[name=ids][form=bulk]").forEach(function (box) {
        box.checked = event.target.checked;
      });
    }
    if (event.target.matches("input[name=ids], #select-all")) updateBulkButtons();
  });

  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
  });

  // --- live updates -------------------------------------------------------------------
  const rows = document.getElementById("rows");
  const listParams = new URLSearchParams(window.location.search);
  const onList = rows !== null;
  const firstPage = !listParams.get("page") || listParams.get("page") === "1";
  listParams.delete("page");

  function fetchText(path, extra) {
    const params = new URLSearchParams(listParams);
    Object.keys(extra || {}).forEach(function (k) { params.set(k, extra[k]); });
    return fetch(path + "?" + params.toString(), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); });
  }

  function parseRows(html) {
    const table = document.createElement("table");
    table.innerHTML = "<tbody>" + html + "</tbody>";
    return Array.from(table.tBodies[0].rows);
  }

  function refreshNav() {
    const sidebar = document.getElementById("sidebar");
    if (!sidebar) return;
    fetchText(body.dataset.liveNav, {}).then(function (html) {
      sidebar.innerHTML = html;
      const count = sidebar.querySelector("[data-queue-attention]");
      const badge = document.getElementById("queue-attention");
      if (count && badge) {
        badge.textContent = count.dataset.queueAttention;
        badge.classList.toggle("zero", count.dataset.queueAttention === "0");
      }
    }).catch(function () {});
  }

  function setTotal(delta) {
    const total = document.getElementById("total");
    if (total) total.textContent = String(Math.max(0, parseInt(total.textContent, 10) + delta));
  }

  function showTable() {
    const table = rows.closest("table");
    if (table) table.hidden = false;
    const empty = document.getElementById("empty");
    if (empty) empty.hidden = true;
  }

  function newMessages() {
    if (!firstPage) {
      document.getElementById("new-mail").hidden = false;
      return;
    }
    const top = rows.querySelector("tr.row");
    const extra = top ? { after: top.dataset.id } : {};
    fetchText(body.dataset.liveRows, extra).then(function (html) {
      const fresh = parseRows(html).filter(function (r) { return !document.getElementById(r.id); });
      fresh.reverse().forEach(function (r) {
        r.classList.add("arrived");
        rows.insertBefore(r, rows.firstChild);
      });
      if (fresh.length) {
        showTable();
        setTotal(fresh.length);
        localTimes(rows);
        wireRows(rows);
      }
    }).catch(function () {});
  }

  function changedMessage(id) {
    const existing = document.getElementById("m-" + id);
    if (!existing) return;
    fetchText(body.dataset.liveRows, { id: id }).then(function (html) {
      const fresh = parseRows(html);
      if (fresh.length) {
        const checked = existing.querySelector("input[name=ids]").checked;
        existing.replaceWith(fresh[0]);
        fresh[0].querySelector("input[name=ids]").checked = checked;
        localTimes(fresh[0]);
        wireRows(rows);
      } else {
        existing.remove();
        setTotal(-1);
      }
    }).catch(function () {});
  }

  function deletedMessage(id) {
    const existing = document.getElementById("m-" + id);
    if (existing) { existing.remove(); setTotal(-1); }
  }

  function debounce(fn, ms) {
    let timer = null;
    return function () {
      if (timer) return;
      timer = window.setTimeout(function () { timer = null; fn(); }, ms);
    };
  }
  const refreshNavSoon = debounce(refreshNav, 150);
  const newMessagesSoon = debounce(newMessages, 100);

  // The queue page: its body is fetched again (filters kept, selection kept) on any change.
  const queueMain = document.getElementById("queue-main");

  let queueBusy = false;
  let queueAgain = false;

  function refreshQueue() {
    if (queueBusy || document.hidden) { queueAgain = true; return; }
    queueBusy = true;
    const params = new URLSearchParams(window.location.search);
    params.set("next", window.location.pathname + window.location.search);
    fetch(body.dataset.liveQueue + "?" + params.toString(), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        const checked = new Set(Array.from(queueMain.querySelectorAll("input[name=ids]:checked"))
          .map(function (box) { return box.value; }));
        const all = document.getElementById("select-all");
        const allChecked = all !== null && all.checked;
        queueMain.innerHTML = html;
        queueMain.querySelectorAll("input[name=ids]").forEach(function (box) {
          box.checked = checked.has(box.value);
        });
        const again = document.getElementById("select-all");
        if (again) again.checked = allChecked;
        updateBulkButtons();
        localTimes(queueMain);
      }).catch(function () {}).finally(function () {
        queueBusy = false;
        if (queueAgain) { queueAgain = false; refreshQueueSoon(); }
      });
  }
  // At most one refresh a second, one at a time, none while the tab is hidden.
  const refreshQueueSoon = debounce(refreshQueue, 1000);
  document.addEventListener("visibilitychange", function () {
    if (queueMain && !document.hidden && queueAgain) { queueAgain = false; refreshQueueSoon(); }
  });

  // A message's Deliveries tab: fetched again when this message's status changes.
  const deliveries = document.getElementById("deliveries");

  function refreshDeliveries() {
    fetch(deliveries.dataset.live, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        deliveries.innerHTML = html;
        localTimes(deliveries);
        const state = deliveries.querySelector("#deliveries-status");
        const badge = document.getElementById("message-status");
        if (state && badge) {
          badge.textContent = state.dataset.status;
          badge.className = "status status-" + state.dataset.status;
        }
      }).catch(function () {});
  }
  const refreshDeliveriesSoon = debounce(refreshDeliveries, 150);

  function connect() {
    if (!window.EventSource || !body.dataset.events) return;
    const indicator = document.getElementById("live-indicator");
    const source = new EventSource(body.dataset.events);
    source.addEventListener("open", function () { if (indicator) indicator.hidden = false; });
    source.addEventListener("error", function () { if (indicator) indicator.hidden = true; });
    function handle(kind, fn) {
      source.addEventListener(kind, function (event) {
        let id = "";
        try { id = JSON.parse(event.data).id; } catch (e) { return; }
        if (onList) fn(id);
        if (queueMain) refreshQueueSoon();
        if (deliveries && id === deliveries.dataset.id) refreshDeliveriesSoon();
        refreshNavSoon();
      });
    }
    handle("message", function () { newMessagesSoon(); });
    handle("status", changedMessage);
    handle("deleted", deletedMessage);
  }

  // The release page: the routes are shown again as the addresses are typed.
  const releaseForm = document.getElementById("release-form");
  if (releaseForm) {
    const input = releaseForm.querySelector("input[name=addresses]");
    let timer = null;
    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(function () {
        const url = releaseForm.action + "?" + new URLSearchParams({ addresses: input.value });
        fetch(url, { credentials: "same-origin" }).then(function (r) { return r.text(); })
          .then(function (html) {
            const doc = new DOMParser().parseFromString(html, "text/html");
            const fresh = doc.getElementById("release-preview");
            const preview = document.getElementById("release-preview");
            if (fresh && preview) preview.innerHTML = fresh.innerHTML;
          }).catch(function () {});
      }, 300);
    });
  }

  localTimes(document);
  wireRows(document);
  if (onList || queueMain) updateBulkButtons();
  connect();
})();
