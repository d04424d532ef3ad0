// Security checks (issue 8):
//   - the language server opens no network listener: the real server (`node --import tsx
//     server/main.ts --stdio`) is started, initialized, given a document and asked for a
//     completion; at each step every socket it holds (/proc/<pid>/fd -> socket:[inode], for the
//     server and any process it started) is looked up in /proc/<pid>/net/{tcp,tcp6,udp,udp6}:
//     none may be a TCP socket in LISTEN or a bound UDP socket. The detector itself is checked
//     first against a listener this test opens, so it cannot pass by seeing nothing;
//   - snapshot files are created user-only (0600) by the engine's save, whatever the umask, also
//     when they replace a world-readable file, and no temporary file is left behind; the files
//     the server writes to its storage folder (snapshot, meta, event log) are user-only too;
//   - restoring a corrupted or truncated snapshot fails with a clear error and leaves the session
//     untouched: same tokens, same stats, same last logits, and the next token's logits are
//     bit-identical to a twin session that never saw the bad file; and a corrupted snapshot in the
//     server's storage folder is reported (naming the problem) while the server keeps serving.
// Linux only (/proc); the server must exist: a missing server/main.ts is a failure, not a skip.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { EngineError, loadModel, type EngineSession } from '../server/engine/index';
import { SessionSaveRequest } from '../server/protocol';
import { ROOT, tempStorage, TestServer, testModel } from './server-harness';

const tmp = mkdtempSync(path.join(tmpdir(), 'endless-security-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// ---- network listeners, from /proc ----

interface InetSocket { proto: string; local: string; state: string; inode: number; listening: boolean }

/** The pid and every descendant of it (children of children...), from /proc/<pid>/stat. */
function processTree(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid ...; comm may hold spaces and parentheses: split after the last ')'
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parent.set(Number(name), ppid);
    } catch { /* exited meanwhile */ }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    for (const [p, pp] of parent) if (pp === out[i] && !out.includes(p)) out.push(p);
  }
  return out;
}

/** Socket inodes among the open files of these processes. */
function socketInodes(pids: number[]): Set<number> {
  const inodes = new Set<number>();
  for (const pid of pids) {
    let fds: string[];
    try { fds = readdirSync(`/proc/${pid}/fd`); } catch { continue; }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(Number(m[1]));
      } catch { /* closed meanwhile */ }
    }
  }
  return inodes;
}

/** The internet sockets of these processes, from their network namespace's tables. */
function inetSockets(pid: number, inodes: Set<number>): InetSocket[] {
  const out: InetSocket[] = [];
  for (const proto of ['tcp', 'tcp6', 'udp', 'udp6']) {
    let table: string;
    try { table = readFileSync(`/proc/${pid}/net/${proto}`, 'utf8'); } catch { continue; }
    for (const line of table.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const inode = Number(f[9]);
      if (!inodes.has(inode)) continue;
      const state = f[3];
      const localPort = parseInt(f[1].split(':')[1] ?? '0', 16);
      // TCP: 0A is LISTEN. UDP has no listen(): a bound, unconnected socket (state 07) receives
      // from anyone, so it counts as a listener.
      const listening = proto.startsWith('tcp') ? state === '0A' : state === '07' && localPort !== 0;
      out.push({ proto, local: f[1], state, inode, listening });
    }
  }
  return out;
}

function listeners(pid: number): { listening: InetSocket[]; all: InetSocket[]; pids: number[] } {
  const pids = processTree(pid);
  const all = inetSockets(pid, socketInodes(pids));
  return { listening: all.filter((s) => s.listening), all, pids };
}

describe('security', () => {
  test('the listener detector sees a TCP and a UDP listener of this process', async () => {
    const server: Server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const udp = createSocket('udp4');
    udp.bind(0, '127.0.0.1');
    await once(udp, 'listening');
    try {
      const found = listeners(process.pid).listening;
      const tcpPort = (server.address() as { port: number }).port, udpPort = udp.address().port;
      const ports = found.map((s) => `${s.proto}:${parseInt(s.local.split(':')[1], 16)}`);
      assert.ok(ports.includes(`tcp:${tcpPort}`), `TCP listener on ${tcpPort} not detected; found ${ports.join(', ') || 'none'}`);
      assert.ok(ports.includes(`udp:${udpPort}`), `UDP socket on ${udpPort} not detected; found ${ports.join(', ') || 'none'}`);
    } finally {
      server.close();
      udp.close();
    }
  });

  test('the language server opens no network listener', { timeout: 300_000 }, async () => {
    const main = path.join(ROOT, 'server', 'main.ts');
    assert.ok(existsSync(main), `the language server ${main} does not exist yet, so this check cannot run: ` +
      'it must start `node --import tsx server/main.ts --stdio` and find no listening socket');
    const storage = tempStorage();
    const stderr: string[] = [];
    const srv = new TestServer({ storage, model: testModel(), stderr: (l) => stderr.push(l) });
    const checks: string[] = [];
    const check = (when: string) => {
      assert.equal(srv.proc.exitCode, null, `the server exited (${when}); stderr:\n${stderr.slice(-20).join('\n')}`);
      const r = listeners(srv.proc.pid!);
      checks.push(`${when}: ${r.pids.length} process(es), ${r.all.length} internet socket(s)`);
      assert.deepEqual(r.listening, [], `the server listens on the network (${when}): ${JSON.stringify(r.listening)}`);
    };
    try {
      check('at start');
      await srv.initialize();
      check('after initialize');
      await srv.ready();
      check('after the model loaded');
      const uri = 'file://' + path.join(storage, 'sample.ts');
      const text = 'export function add(a: number, b: number): number {\n  return ';
      await srv.open(uri, text);
      await srv.complete(uri, text.length, true);
      await srv.settle();
      check('after a completion');
      // the server's own files (snapshot, meta, event log) are user-only too
      await srv.conn.sendRequest(SessionSaveRequest);
      const loose: string[] = [];
      const walk = (dir: string) => {
        for (const name of readdirSync(dir)) {
          const p = path.join(dir, name), st = statSync(p);
          if (st.isDirectory()) walk(p);
          else if ((st.mode & 0o077) !== 0) loose.push(`${path.relative(storage, p)} ${(st.mode & 0o777).toString(8)}`);
        }
      };
      walk(storage);
      assert.ok(readdirSync(storage).length > 0, 'the server saved nothing in its storage folder');
      assert.deepEqual(loose, [], 'files in the storage folder readable by others');
    } finally {
      await srv.shutdown();
      rmSync(storage, { recursive: true, force: true });
    }
    assert.equal(checks.length, 4, checks.join('\n'));
  });

  test('a corrupted snapshot in the storage folder: the server says so and keeps serving', { timeout: 300_000 }, async () => {
    const main = path.join(ROOT, 'server', 'main.ts');
    assert.ok(existsSync(main), `the language server ${main} does not exist yet`);
    const storage = tempStorage();
    const uri = 'file://' + path.join(storage, 'sample.ts');
    const text = 'export const answer = 42;\nexport function twice(x: number): number {\n  return ';
    try {
      const first = new TestServer({ storage, model: testModel() });
      try {
        await first.initialize();
        await first.ready();
        await first.open(uri, text);
        await first.settle();
        await first.conn.sendRequest(SessionSaveRequest);
      } finally {
        await first.shutdown();
      }
      const snap = readdirSync(storage).find((n) => n.endsWith('.snapshot'));
      assert.ok(snap, `no snapshot file in the storage folder: ${readdirSync(storage).join(', ')}`);
      const bytes = readFileSync(path.join(storage, snap));
      for (let i = 0; i < 64; i++) bytes[Math.floor(bytes.length / 2) + i] ^= 0xa5;
      writeFileSync(path.join(storage, snap), bytes);

      const stderr: string[] = [];
      const second = new TestServer({ storage, model: testModel(), stderr: (l) => stderr.push(l) });
      try {
        await second.initialize();
        await second.ready();
        const t0 = Date.now();
        const said = () => [...second.logs, ...second.statuses.map((st) => st.message ?? '')].find((m) => /snapshot could not be restored/.test(m));
        while (!said() && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 50));
        assert.ok(said(), `the server did not say the snapshot was bad; logs:\n${second.logs.slice(-10).join('\n')}`);
        assert.match(said()!, /checksum/, 'the message names the problem');
        // and it keeps serving
        await second.open(uri, text);
        await second.complete(uri, text.length, true);
        await second.settle();
        assert.equal(second.proc.exitCode, null, `the server exited; stderr:\n${stderr.slice(-20).join('\n')}`);
      } finally {
        await second.shutdown();
      }
    } finally {
      rmSync(storage, { recursive: true, force: true });
    }
  });

  test('snapshot files are created user-only (0600), whatever the umask', async () => {
    const model = await loadModel(testModel(), { device: 'cpu', threads: 1 });
    const oldMask = process.umask(0o000);
    try {
      const s = model.createSession({ sinks: 4, window: 64 });
      await s.decode(Array.from({ length: 80 }, (_, i) => (i * 7) % model.info.nVocab));
      const dir = mkdtempSync(path.join(tmp, 'snap-'));
      const fresh = path.join(dir, 'fresh.snap');
      await s.save(fresh);
      assert.equal(statSync(fresh).mode & 0o777, 0o600, `new snapshot has mode ${(statSync(fresh).mode & 0o777).toString(8)}`);
      // replacing a world-readable file leaves a user-only one (the save writes a new file and renames it)
      const replaced = path.join(dir, 'replaced.snap');
      writeFileSync(replaced, 'old');
      chmodSync(replaced, 0o644);
      await s.save(replaced);
      assert.equal(statSync(replaced).mode & 0o777, 0o600, `replaced snapshot has mode ${(statSync(replaced).mode & 0o777).toString(8)}`);
      assert.deepEqual(readdirSync(dir).sort(), ['fresh.snap', 'replaced.snap'], 'a temporary file was left behind');
      s.dispose();
    } finally {
      process.umask(oldMask);
      model.dispose();
    }
  });

  test('a corrupted or truncated snapshot is refused and leaves the session untouched', async () => {
    const model = await loadModel(testModel(), { device: 'cpu', threads: 1 });
    const nv = model.info.nVocab;
    const toks = (n: number, k: number) => Array.from({ length: n }, (_, i) => (i * k + 3) % nv);
    try {
      const params = { sinks: 4, window: 32, memoryMax: 8 };
      const donor = model.createSession(params);
      await donor.decode(toks(50, 5));
      const good = path.join(tmp, 'good.snap');
      await donor.save(good);
      const bytes = readFileSync(good);
      donor.dispose();

      // the session under test and a twin that never sees a bad file: same calls otherwise
      const build = async (): Promise<EngineSession> => {
        const s = model.createSession(params);
        await s.decode(toks(40, 11));
        await s.setMemory(toks(3, 13));
        await s.decode(toks(5, 17));
        return s;
      };
      const s = await build(), twin = await build();
      const bad: [string, Buffer, RegExp][] = [];
      const flipped = Buffer.from(bytes);
      flipped[Math.floor(flipped.length / 2)] ^= 0x5a;
      bad.push(['a flipped byte', flipped, /checksum/]);
      bad.push(['a truncated file', bytes.subarray(0, Math.floor(bytes.length * 0.7)), /checksum|truncated/]);
      bad.push(['a 10-byte file', bytes.subarray(0, 10), /truncated/]);
      const magic = Buffer.from(bytes);
      magic.write('XXXXXXXX', 0, 'latin1');
      bad.push(['a wrong magic', magic, /magic/]);
      bad.push(['an empty file', Buffer.alloc(0), /truncated/]);
      bad.push(['garbage', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) & 0xff)), /magic|truncated/]);

      const tokens0 = Array.from(s.tokens()), stats0 = s.stats(), logits0 = await s.lastLogits();
      for (const [what, data, words] of bad) {
        const file = path.join(tmp, 'bad.snap');
        writeFileSync(file, data);
        await assert.rejects(s.restore(file), (e: unknown) => {
          assert.ok(e instanceof EngineError, `${what}: not an EngineError: ${String(e)}`);
          assert.ok(['ENDLESS_ERR_FORMAT', 'ENDLESS_ERR_MISMATCH'].includes(e.code), `${what}: code ${e.code}`);
          assert.match(e.message, words, `${what}: unclear message: ${e.message}`);
          return true;
        }, what);
        assert.deepEqual(Array.from(s.tokens()), tokens0, `${what}: tokens changed`);
        assert.deepEqual(s.stats(), stats0, `${what}: stats changed`);
        assert.deepEqual(await s.lastLogits(), logits0, `${what}: last logits changed`);
      }
      // a missing file: an I/O error, nothing changed
      await assert.rejects(s.restore(path.join(tmp, 'missing.snap')), (e: unknown) => e instanceof EngineError && e.code === 'ENDLESS_ERR_IO');
      assert.deepEqual(s.stats(), stats0);

      // untouched means it also continues exactly as the twin does
      const next = toks(3, 19);
      const a = await s.decode(next, { logits: 'last' }), b = await twin.decode(next, { logits: 'last' });
      assert.ok(a && b && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength)),
        'after the failed restores the next logits differ from the twin session\'s');
      assert.deepEqual(Array.from(s.tokens()), Array.from(twin.tokens()));

      // and the good file still restores (the session is not stuck)
      await s.restore(good);
      assert.equal(s.stats().seen, 50);
      s.dispose();
      twin.dispose();
    } finally {
      model.dispose();
    }
  });
});
