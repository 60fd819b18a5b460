// The colour theme: the system's (prefers-color-scheme) unless the person chose
// light or dark in the sidebar's menu (kept in this browser). Loaded in <head>,
// before the page is drawn, so a dark page never flashes light.
(function () {
  "use strict";
  var KEY = "theme";
  var system = window.matchMedia("(prefers-color-scheme: dark)");

  function chosen() {
    try { return window.localStorage.getItem(KEY) || "system"; } catch (e) { return "system"; }
  }
  function apply() {
    var choice = chosen();
    var dark = choice === "dark" || (choice === "system" && system.matches);
    document.documentElement.setAttribute("data-theme", dark ? "dark" : "light");
  }
  apply();
  system.addEventListener("change", apply);

  document.addEventListener("change", function (evt) {
    if (!evt.target || evt.target.id !== "theme-choice") return;
    try { window.localStorage.setItem(KEY, evt.target.value); } catch (e) { /* private mode */ }
    apply();
  });
  document.addEventListener("DOMContentLoaded", function () {
    var menu = document.getElementById("theme-choice");
    if (menu) menu.value = chosen();
  });
})();
