// Partial refresh: an element with data-refresh="URL" is replaced by that URL's HTML
// every data-every seconds (default 10), while data-until is absent from the answer.
(function () {
  function refresh(el) {
    var every = (parseFloat(el.getAttribute("data-every")) || 10) * 1000;
    setTimeout(function () {
      fetch(el.getAttribute("data-refresh"), {credentials: "same-origin"}).then(function (r) {
        if (r.redirected || !r.ok) { return null; }
        return r.text();
      }).then(function (html) {
        if (html === null) { return; }
        el.innerHTML = html;
        if (!el.querySelector("[data-final]")) { refresh(el); }
      }).catch(function () { refresh(el); });
    }, every);
  }
  document.querySelectorAll("[data-refresh]").forEach(function (el) {
    if (!el.querySelector("[data-final]")) { refresh(el); }
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (e) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { e.preventDefault(); }
    });
  });
})();
