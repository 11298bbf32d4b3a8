// The deadline clocks: hours left, recounted every 30 seconds; overdue in red. Pages work without it.
(function () {
  "use strict";
  function tick() {
    var now = Date.now();
    document.querySelectorAll(".clock[data-deadline]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-deadline"));
      if (isNaN(due)) { return; }
      var hours = (due - now) / 3600000;
      el.textContent = hours < 0 ? "overdue " + (-hours).toFixed(1) + " h" : hours.toFixed(1) + " h left";
      el.classList.toggle("overdue", hours < 0);
      el.classList.toggle("soon", hours >= 0 && hours < 24);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { tick(); setInterval(tick, 30000); });
})();
