// The status page's little JS: filters that apply on change, a gentle auto-refresh that never interrupts
// typing, and the time left on a waiting person's code. Every page works without it.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }

  const seconds = Number(document.body.dataset.refresh || 0);
  if (seconds > 0) {
    const busy = () => {
      const active = document.activeElement;
      const typing = active && ["INPUT", "SELECT", "TEXTAREA"].includes(active.tagName);
      const typed = [...document.querySelectorAll("input[name=code]")].some((input) => input.value !== "");
      return typing || typed;
    };
    setInterval(() => { if (!busy() && !document.hidden) location.reload(); }, seconds * 1000);
  }

  const clocks = document.querySelectorAll("time.until");
  const tick = () => {
    for (const clock of clocks) {
      const left = Math.round((Date.parse(clock.getAttribute("datetime")) - Date.now()) / 1000);
      clock.textContent = left > 0 ? `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")} left to hand it in` : "the wait has run out";
      clock.classList.toggle("soon", left < 60);
    }
  };
  if (clocks.length) { tick(); setInterval(tick, 1000); }
});
