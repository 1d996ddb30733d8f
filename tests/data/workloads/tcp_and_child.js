// A small agent-like Node task: a local TCP server and clients, a worker thread, a child
// process, timers. Which syscalls it makes depends on timing (libuv's thread pool, when each
// socket becomes readable), which is what repeated recordings have to cover.
'use strict';
const net = require('net');
const { execFile } = require('child_process');
const { Worker } = require('worker_threads');
const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');

function server() {
  return new Promise((resolve) => {
    const srv = net.createServer((sock) => {
      sock.on('data', (d) => sock.write(d.toString().toUpperCase()));
    });
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

function roundTrip(port, text) {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1', () => c.write(text));
    c.on('data', (d) => { c.end(); resolve(d.toString()); });
    c.on('error', reject);
  });
}

function worker() {
  return new Promise((resolve, reject) => {
    const w = new Worker(
      "const { parentPort } = require('worker_threads');" +
      "let h = 0; for (let i = 0; i < 200000; i++) h = (h * 31 + i) >>> 0;" +
      "parentPort.postMessage(h);",
      { eval: true });
    w.on('message', resolve);
    w.on('error', reject);
  });
}

function child() {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', 'console.log(process.pid > 0)'], (err, out) =>
      err ? reject(err) : resolve(out.trim()));
  });
}

async function main() {
  const srv = await server();
  const port = srv.address().port;
  const replies = await Promise.all(['a', 'b', 'c', 'd'].map((t) => roundTrip(port, t)));
  srv.close();
  const [h, out] = await Promise.all([worker(), child()]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'workload-'));
  const file = path.join(dir, 'data.txt');
  fs.writeFileSync(file, replies.join(''));
  const digest = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  fs.rmSync(dir, { recursive: true });
  console.log(replies.join(''), h, out, digest.slice(0, 8));
}

main().catch((e) => { console.error(e); process.exit(1); });
