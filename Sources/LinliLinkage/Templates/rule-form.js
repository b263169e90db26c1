// The rule form: show the fields of the chosen kind of trigger and of the actions ticked, and
// offer only the properties, events and services of the chosen product. Without this script every field shows, and the
// server says which do not fit.
(function () {
  "use strict";
  var form = document.getElementById("rule-form");
  if (!form) return;
  var kind = document.getElementById("in-kind");

  function showKind() {
    var chosen = kind ? kind.value : "";
    form.querySelectorAll("[data-kinds]").forEach(function (part) {
      part.hidden = part.getAttribute("data-kinds").split(" ").indexOf(chosen) < 0;
    });
  }

  function filter(select) {
    var by = document.getElementById(select.getAttribute("data-by-product") || "in-source");
    var product = by ? by.value.split("/")[0] : "";
    select.querySelectorAll("optgroup").forEach(function (group) {
      var other = group.getAttribute("data-product") !== product;
      group.hidden = other;
      group.disabled = other;
    });
    var picked = select.options[select.selectedIndex];
    if (picked && picked.parentNode.tagName === "OPTGROUP" && picked.parentNode.disabled) select.value = "";
  }

  var filtered = form.querySelectorAll("select[data-by-product]");
  function filterAll() { filtered.forEach(filter); }
  if (kind) kind.addEventListener("change", showKind);
  ["in-source", "in-commandDevice"].forEach(function (id) {
    var select = document.getElementById(id);
    if (select) select.addEventListener("change", filterAll);
  });
  // An action's fields show once it is ticked (and the escalation's once it is asked for).
  var parts = form.querySelectorAll("[data-when]");
  function showTicked() {
    parts.forEach(function (part) {
      var box = document.getElementById(part.getAttribute("data-when"));
      part.hidden = !!box && !box.checked;
    });
  }
  parts.forEach(function (part) {
    var box = document.getElementById(part.getAttribute("data-when"));
    if (box) box.addEventListener("change", showTicked);
  });
  showKind();
  filterAll();
  showTicked();
})();
