// The index page: pick a room and a name, then go to /rooms/<room>?name=<name>.
(() => {
  'use strict';
  const form = document.getElementById('join');
  const room = document.getElementById('room');
  const name = document.getElementById('name');
  const params = new URLSearchParams(location.search);
  room.value = params.get('room') || '';
  name.value = localStorage.getItem('sockets-chat-name') || '';
  (room.value ? name : room).focus();

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const r = room.value.trim();
    const n = name.value.trim();
    if (!r || !n) return;
    localStorage.setItem('sockets-chat-name', n);
    location.href = `/rooms/${encodeURIComponent(r)}?name=${encodeURIComponent(n)}`;
  });
})();
