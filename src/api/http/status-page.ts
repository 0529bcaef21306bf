// `GET /`: a self-contained status page (inline CSS and JS, no external URL), and the two read-only
// lists it needs, `GET /v1/locks` and `GET /v1/sessions`. The page is static and holds no data, so it
// loads without --auth-password; its own requests send `Authorization: Bearer <password>` taken from a
// password field and kept in sessionStorage (per tab, gone when the tab closes).
import express from "express";
import type { CoordinationStateMachine } from "../../fsm/coordination.js";
import { authorizeRequest, type HttpAuth, sendRefusal } from "./server.js";

/** Locks, and sessions, one list answer names at most; the answer says `truncated` when there were more. */
export const statusListEntriesMax = 1_000;
/** Waiters listed per lock; `waiterCount` still counts them all. */
export const statusWaitersPerLockMax = 20;

interface LockListing {
  readonly name: string;
  readonly owner: string;
  readonly token: number;
  readonly session: number | null;
  readonly ttlMs: number;
  readonly waiterCount: number;
  readonly waiters: { owner: string; session: number | null }[];
}

/** The page and its lists; registered before the authentication middleware, so the lists check the password themselves. */
export function statusPageRouter(fsm: CoordinationStateMachine, auth?: HttpAuth): express.Router {
  const router = express.Router();
  // Both lists are GETs, so the read-only password suffices.
  const authorized: express.RequestHandler = (request, response, next) => {
    const access = auth === undefined ? "full" : authorizeRequest(request, auth);
    if (typeof access === "string") return next();
    sendRefusal(response, access);
  };

  router.get("/", (_request, response) => {
    response
      .type("html")
      // Nothing but this page's own inline code and same-origin requests.
      .set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'")
      .set("Cache-Control", "no-store")
      .send(statusPageHtml);
  });

  router.get("/v1/locks", authorized, (_request, response) => {
    const held = fsm.heldLocks(statusListEntriesMax, statusWaitersPerLockMax);
    const truncated = held.truncated;
    const locks = held.locks.map(({ sessionId, waiters, ...lock }): LockListing => ({
      ...lock,
      session: sessionId,
      waiters: waiters.map((waiter) => ({ owner: waiter.owner, session: waiter.sessionId })),
    }));
    response.json({ index: fsm.appliedIndex, locks, truncated, max: statusListEntriesMax });
  });

  router.get("/v1/sessions", authorized, (_request, response) => {
    const all = fsm.sessionLeases().filter((session) => !session.implicit);
    const sessions = all.slice(0, statusListEntriesMax).map((session) => ({ id: session.sessionId, ttlMs: session.ttlMs, label: session.label }));
    response.json({ index: fsm.appliedIndex, sessions, truncated: all.length > sessions.length, max: statusListEntriesMax });
  });
  return router;
}

/** Leader changes the page keeps in its list. */
const leaderChangesShownMax = 20;

export const statusPageHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>raftlock status</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d232a; background: #f7f8fa; }
  h1 { font-size: 1.3rem; margin: 0 0 .3rem; }
  h2 { font-size: 1.05rem; margin: 1.4rem 0 .4rem; }
  table { border-collapse: collapse; background: #fff; min-width: 28rem; }
  th, td { border: 1px solid #d5d9e0; padding: .25rem .6rem; text-align: left; }
  th { background: #eef1f5; font-weight: 600; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  tr.leader td { background: #e7f6ea; font-weight: 600; }
  tr.down td { color: #a33; }
  #conn { font-size: .85rem; color: #555; }
  #conn.bad { color: #a33; }
  .muted { color: #777; }
  form { margin: .5rem 0; }
</style>
</head>
<body>
<h1>raftlock <span id="cluster" class="muted"></span></h1>
<div id="conn">connecting…</div>
<form id="auth" hidden>
  <label>Password (--auth-password): <input id="password" type="password" autocomplete="current-password"></label>
  <button type="submit">Use</button>
</form>
<p>Leader: <strong id="leader">unknown</strong> <span id="leader-term" class="muted"></span></p>

<h2>Members</h2>
<table id="members"><thead><tr><th>id</th><th>role</th><th>term</th><th>commit</th><th>applied</th><th>match</th><th>lag</th><th>reachable</th></tr></thead><tbody></tbody></table>

<h2>Recent leader changes</h2>
<table id="changes"><thead><tr><th>log index</th><th>term</th><th>leader</th><th>seen</th></tr></thead><tbody></tbody></table>

<h2>Locks held</h2>
<table id="locks"><thead><tr><th>name</th><th>holder</th><th>token</th><th>session</th><th>ttl ms</th><th>waiters</th></tr></thead><tbody></tbody></table>
<div id="locks-note" class="muted"></div>

<h2>Sessions</h2>
<table id="sessions"><thead><tr><th>id</th><th>label</th><th>ttl ms</th></tr></thead><tbody></tbody></table>
<div id="sessions-note" class="muted"></div>

<script>
"use strict";
// Every server-provided string goes into the page through textContent, never parsed as markup.
const pollIntervalMs = 1500;
const leaderChangesShownMax = ${leaderChangesShownMax};
const tokenKey = "raftlock.authPassword";
const $ = (id) => document.getElementById(id);

function headers() {
  const password = sessionStorage.getItem(tokenKey);
  return password ? { authorization: "Bearer " + password } : {};
}

function setConn(text, bad) {
  $("conn").textContent = text;
  $("conn").className = bad ? "bad" : "";
}

async function getJson(path) {
  const response = await fetch(path, { headers: headers(), cache: "no-store" });
  if (response.status === 401) {
    $("auth").hidden = false;
    throw new Error("this node needs its --auth-password: enter it above");
  }
  if (!response.ok) throw new Error(path + " answered " + response.status);
  return response.json();
}

function row(cells, className) {
  const tr = document.createElement("tr");
  if (className) tr.className = className;
  for (const cell of cells) {
    const td = document.createElement("td");
    const text = cell === undefined || cell === null ? "" : String(cell);
    td.textContent = text;
    if (typeof cell === "number") td.className = "num";
    tr.appendChild(td);
  }
  return tr;
}

function fill(tableId, rows) {
  $(tableId).tBodies[0].replaceChildren(...rows);
}

function render(cluster) {
  $("cluster").textContent = "cluster " + cluster.clusterId + ", seen from " + cluster.id;
  $("leader").textContent = cluster.leader ? cluster.leader.id : "none";
  $("leader-term").textContent = cluster.leader ? "(term " + cluster.leader.term + ")" : "";
  const leaderId = cluster.leader ? cluster.leader.id : null;
  const leader = cluster.members.find((m) => m.id === leaderId);
  const leaderCommit = leader && typeof leader.commitIndex === "number" ? leader.commitIndex : null;
  const members = [...cluster.members].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  fill("members", members.map((m) => {
    // Lag: entries the leader committed that this member has not applied yet.
    const lag = leaderCommit !== null && typeof m.appliedIndex === "number" ? Math.max(0, leaderCommit - m.appliedIndex) : null;
    const role = m.reachable ? (m.role || "") + (m.voter === false ? " (learner)" : "") : "unreachable";
    return row([m.id, role, m.term, m.commitIndex, m.appliedIndex, m.matchIndex, lag, m.reachable ? "yes" : "no"],
      m.id === leaderId && m.reachable ? "leader" : m.reachable ? "" : "down");
  }));
}

const leaderChanges = [];
function renderChanges() {
  fill("changes", leaderChanges.map((c) => row([c.index, c.term, c.leaderId, c.seen])));
}
function addLeaderChange(event) {
  if (typeof event.leaderId !== "string") return;
  if (leaderChanges.some((c) => c.index === event.index)) return;
  leaderChanges.unshift({ index: event.index, term: event.term, leaderId: event.leaderId, seen: new Date().toLocaleTimeString() });
  leaderChanges.sort((a, b) => b.index - a.index);
  leaderChanges.length = Math.min(leaderChanges.length, leaderChangesShownMax);
  renderChanges();
}

async function refresh() {
  try {
    const [cluster, locks, sessions] = await Promise.all([getJson("/v1/cluster"), getJson("/v1/locks"), getJson("/v1/sessions")]);
    render(cluster);
    fill("locks", locks.locks.map((l) => {
      const waiting = l.waiters.map((w) => w.owner).join(", ") + (l.waiterCount > l.waiters.length ? " … (" + l.waiterCount + ")" : "");
      return row([l.name, l.owner, l.token, l.session === null ? "own lease" : l.session, l.ttlMs, waiting]);
    }));
    $("locks-note").textContent = locks.truncated ? "only the first " + locks.max + " locks are listed" : (locks.locks.length === 0 ? "no lock is held" : "");
    fill("sessions", sessions.sessions.map((s) => row([s.id, s.label, s.ttlMs])));
    $("sessions-note").textContent = sessions.truncated ? "only the first " + sessions.max + " sessions are listed" : (sessions.sessions.length === 0 ? "no open session" : "");
    setConn("updated " + new Date().toLocaleTimeString(), false);
  } catch (error) {
    setConn(String(error.message || error), true);
  }
}

// Server-Sent Events read through fetch, not EventSource: EventSource cannot send the Authorization header.
let lastEventId = "0";
async function watchLeader() {
  for (;;) {
    try {
      // After 410 (history compacted) lastEventId is "": the node starts the stream at its applied index.
      const since = lastEventId === "" ? "" : "&since=" + encodeURIComponent(lastEventId);
      const response = await fetch("/v1/watch?channel=raft:leader" + since, { headers: headers(), cache: "no-store" });
      if (response.status === 410) lastEventId = "";
      if (response.ok && response.body) {
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf("\\n\\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let data = "";
            for (const line of block.split("\\n")) {
              if (line.startsWith("id: ")) lastEventId = line.slice(4);
              else if (line.startsWith("data: ")) data += line.slice(6);
            }
            if (data) { try { addLeaderChange(JSON.parse(data)); } catch (_) { /* not an event */ } }
          }
        }
      }
    } catch (_) { /* the node went away: retry below */ }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

$("auth").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(tokenKey, $("password").value);
  $("password").value = "";
  $("auth").hidden = true;
  refresh();
});

refresh();
setInterval(refresh, pollIntervalMs);
watchLeader();
</script>
</body>
</html>
`;
