// The room page: one WebSocket to /sockets/rooms/<room>/<name>, messages as JSON
// {"typ": "status" | "message", "from": <name>, "text": <text>}. The first message is
// {"typ": "members", "members": [...]}: who is in the room (on every server), this page included;
// the status notices after it keep the list up to date. The connection state is always
// shown; when the connection drops (a server restart, a network change) the page reconnects with
// exponential backoff and jitter, so that many pages do not all come back at the same instant.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const list = $('messages');
  const stateEl = $('state');
  const form = $('send');
  const input = $('text');
  const button = form.querySelector('button');
  const membersEl = $('members');
  let members = [];

  const room = decodeURIComponent(location.pathname.split('/')[2] || '');
  const name = new URLSearchParams(location.search).get('name') || localStorage.getItem('sockets-chat-name') || '';
  if (!room || !name) {
    // No name yet: the index page asks for one and comes back.
    location.replace(`/?room=${encodeURIComponent(room)}`);
    return;
  }
  localStorage.setItem('sockets-chat-name', name);
  document.title = `#${room} · Sockets chat`;
  $('room-name').textContent = room;
  $('me').textContent = name;

  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const url = `${scheme}://${location.host}/sockets/rooms/${encodeURIComponent(room)}/${encodeURIComponent(name)}`;
  let socket = null;
  let attempt = 0;      // failed connection attempts since the last success
  let retryTimer = null;
  let connectedOnce = false;

  function setState(state, label) {
    stateEl.dataset.state = state;
    stateEl.textContent = label;
    input.disabled = button.disabled = state !== 'connected';
    if (state === 'connected') input.focus();
  }

  // Every line is built with textContent, never innerHTML: names and texts come from other people.
  function show(kind, from, text) {
    const item = document.createElement('li');
    item.className = kind;
    item.dataset.typ = kind;
    item.dataset.from = from;
    item.dataset.text = text;
    const time = document.createElement('time');
    time.textContent = new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    if (kind === 'message' || kind === 'mine') {
      const who = document.createElement('span');
      who.className = 'from';
      who.textContent = kind === 'mine' ? 'you' : from;
      const body = document.createElement('span');
      body.className = 'text';
      body.textContent = text;
      item.append(who, body, time);
    } else {
      const body = document.createElement('span');
      body.className = 'text';
      body.textContent = kind === 'status' ? `${from} ${text}` : text;
      item.append(body, time);
    }
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.append(item);
    if (atBottom || kind === 'mine') list.scrollTop = list.scrollHeight;
  }

  function showMembers() {
    const sorted = [...members].sort();
    membersEl.dataset.members = JSON.stringify(sorted);
    membersEl.textContent = sorted.length ? `${sorted.length} here: ${sorted.join(', ')}` : '';
  }

  function updateMembers(m) {
    if (m.typ === 'members' && Array.isArray(m.members)) members = m.members.map(String);
    else if (m.typ === 'status' && m.text === 'joined') members.push(m.from);
    else if (m.typ === 'status' && m.text === 'left') {
      const i = members.indexOf(m.from);
      if (i >= 0) members.splice(i, 1);
    } else return;
    showMembers();
  }

  // 0.5 s, 1 s, 2 s, 4 s, 8 s, then 10 s; each delay drawn from [d/2, d).
  function backoff(n) {
    const d = Math.min(10000, 500 * 2 ** n);
    return d / 2 + Math.random() * (d / 2);
  }

  function connect() {
    retryTimer = null;
    setState('connecting', attempt === 0 ? 'connecting…' : `reconnecting (attempt ${attempt + 1})…`);
    const ws = new WebSocket(url);
    socket = ws;
    ws.addEventListener('open', () => {
      attempt = 0;
      setState('connected', 'connected');
      show('system', '', connectedOnce ? 'Reconnected.' : `You joined #${room} as ${name}.`);
      connectedOnce = true;
    });
    ws.addEventListener('message', (event) => {
      let m;
      try { m = JSON.parse(event.data); } catch { return; }
      updateMembers(m);
      if (m.typ === 'status') show('status', m.from, m.text);
      else if (m.typ === 'message') show('message', m.from, m.text);
    });
    ws.addEventListener('close', (event) => {
      if (socket !== ws) return;
      socket = null;
      members = [];
      showMembers();
      if (event.code === 1008 && event.reason.startsWith('invalid name')) {
        setState('closed', event.reason);  // retrying cannot help
        return;
      }
      if (connectedOnce && attempt === 0) show('system', '', 'Connection lost; reconnecting…');
      const delay = backoff(attempt++);
      setState('disconnected', `disconnected · retrying in ${Math.max(1, Math.round(delay / 1000))} s`);
      retryTimer = setTimeout(connect, delay);
    });
  }

  // Back online, or the tab is visible again: retry now instead of waiting out the backoff.
  function retryNow() {
    if (retryTimer !== null) {
      clearTimeout(retryTimer);
      connect();
    }
  }
  window.addEventListener('online', retryNow);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) retryNow(); });

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim() || !socket || socket.readyState !== WebSocket.OPEN) return;
    socket.send(JSON.stringify({ typ: 'message', text }));
    show('mine', name, text);
    input.value = '';
  });

  connect();
})();
