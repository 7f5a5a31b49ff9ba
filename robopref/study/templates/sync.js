// Every clip on the page starts together and loops together: each holds its last frame
// until all have ended. Calls onStart once all can play through.
function syncClips(videos, onStart) {
  var ready = 0, ended = 0;
  function playAll() {
    videos.forEach(function (v) { v.currentTime = 0; var p = v.play(); if (p && p.catch) p.catch(function () {}); });
  }
  videos.forEach(function (video) {
    video.addEventListener("canplaythrough", function () {
      if (++ready === videos.length) { if (onStart) onStart(); playAll(); }
    }, { once: true });
    video.addEventListener("ended", function () { if (++ended === videos.length) { ended = 0; playAll(); } });
  });
}
