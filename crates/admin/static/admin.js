// Live updates without a framework: an element with data-poll="URL" is
// refreshed from that URL's JSON {"state": ...} every few seconds; when the
// state changes the page reloads so its forms match. A page with
// data-refresh="N" on <main> reloads every N seconds while visible. A link
// with data-back goes back in history (its href is the fallback without
// script); no handler is written inline, the Content-Security-Policy
// allows this file's script only.
(function () {
  document.querySelectorAll('[data-back]').forEach(function (link) {
    link.addEventListener('click', function (event) {
      if (window.history.length > 1) { event.preventDefault(); window.history.back(); }
    });
  });
  var el = document.querySelector('[data-poll]');
  if (el) {
    var url = el.getAttribute('data-poll');
    var seen = el.textContent.trim();
    setInterval(function () {
      if (document.hidden) return;
      fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (data && data.state && data.state !== seen) { window.location.reload(); }
        })
        .catch(function () {});
    }, 3000);
  }
  var refresh = document.querySelector('[data-refresh]');
  if (refresh) {
    var secs = parseInt(refresh.getAttribute('data-refresh'), 10) || 15;
    setInterval(function () { if (!document.hidden) window.location.reload(); }, secs * 1000);
  }
})();
