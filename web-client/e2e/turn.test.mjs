// End-to-end: a call when the network lets no UDP reach the SFU — over ICE-TCP to the SFU
// itself, or through a TURN server. Debian's coturn runs in the test's network namespace with
// `use-auth-secret`; Vizit is configured with its URLs and shared secret and gives each join
// short-lived credentials (TURN REST API scheme). nftables drops every datagram between the
// browsers and the SFU except those of coturn's relay; then, in turn, everything to coturn (the
// pages must use the SFU's passive TCP candidate), or the SFU's TCP port and every datagram to
// coturn (the pages must reach coturn over TCP, then over TLS only). The time from
// «Присоединиться» to connected is printed for a direct UDP call, ICE-TCP and both relays.
//
// Run like the other browser tests: scripts/e2e.sh (a network namespace with only loopback).

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import {
  CHROMIUM_ARGS,
  byTestId,
  launchBrowser,
  makeToken,
  nft,
  openCallPage,
  received,
  remember,
  startVizit,
  until,
  waitState,
  withDiagnostics,
  hangUp,
} from './harness.mjs';

const execFileP = promisify(execFile);
const TEST_TIMEOUT = 90_000;
const SECRET = randomBytes(24).toString('hex');
const TURN_PORT = 3478;
const TURNS_PORT = 5349;
/** coturn relays from these ports: the only datagrams the SFU may exchange with. */
const RELAY_PORTS = [49160, 49200];


/** Drop UDP between the browsers and the SFU (but coturn's relay), and `extra` rules. */
function block(sfuPort, extra) {
  const [lo, hi] = RELAY_PORTS;
  return nft(
    `table inet net {\n chain out {\n type filter hook output priority 0;\n` +
      ` udp dport ${sfuPort} udp sport != ${lo}-${hi} drop\n` +
      ` udp sport ${sfuPort} udp dport != ${lo}-${hi} drop\n` +
      extra.map((r) => ` ${r}\n`).join('') +
      ` }\n}\n`,
  );
}

const unblock = () => nft('delete table inet net\n').catch(() => {});

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
function accepts(port) {
  return new Promise((resolveTry) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolveTry(true);
    });
    socket.once('error', () => resolveTry(false));
  });
}

/** coturn's own log (kept apart: it would push Vizit's lines out of the server log). */
const coturnLog = [];

/** withDiagnostics, plus coturn's log when the test fails. */
const diagnosed = (fn) =>
  withDiagnostics(async () => {
    try {
      await fn();
    } catch (e) {
      console.log(`---- coturn (tail) ----\n${coturnLog.slice(-40).join('\n')}`);
      throw e;
    }
  });

describe('A call through TURN when no UDP reaches the SFU', () => {
  let dir;
  let coturn;
  let server;
  let browser;
  let sfuPort;
  let sfuTcpPort;

  before(
    diagnosed(async () => {
      dir = await mkdtemp(join(tmpdir(), 'vizit-turn-'));
      const cert = join(dir, 'turn.crt');
      const key = join(dir, 'turn.key');
      await execFileP('openssl', [
        'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
        '-keyout', key, '-out', cert,
      ]);
      const config = join(dir, 'turnserver.conf');
      await writeFile(
        config,
        [
          'listening-ip=127.0.0.1',
          'relay-ip=127.0.0.1',
          `listening-port=${TURN_PORT}`,
          `tls-listening-port=${TURNS_PORT}`,
          `min-port=${RELAY_PORTS[0]}`,
          `max-port=${RELAY_PORTS[1]}`,
          'use-auth-secret',
          `static-auth-secret=${SECRET}`,
          'realm=vizit.test',
          `cert=${cert}`,
          `pkey=${key}`,
          'no-cli',
          'allow-loopback-peers',
          'fingerprint',
          'log-file=stdout',
          'simple-log',
          `pidfile=${join(dir, 'turnserver.pid')}`,
          `userdb=${join(dir, 'turndb')}`,
        ].join('\n') + '\n',
      );
      coturn = spawn('turnserver', ['-c', config], { stdio: ['ignore', 'pipe', 'pipe'] });
      const log = (d) => String(d).split('\n').filter(Boolean).forEach((l) => remember(coturnLog, l, 100));
      coturn.stdout.on('data', log);
      coturn.stderr.on('data', log);
      await until('coturn listens', () => accepts(TURN_PORT), 15_000, 100);

      server = await startVizit({
        VIZIT_TURN__URLS: `["turn:127.0.0.1:${TURN_PORT}?transport=tcp", "turns:127.0.0.1:${TURNS_PORT}?transport=tcp"]`,
        VIZIT_TURN__SECRET: SECRET,
      });
      sfuPort = server.mediaPort;
      sfuTcpPort = server.tcpPort;
      assert.ok(sfuTcpPort, 'the server printed no "ICE-TCP on" line');
      // coturn's certificate is self-signed: the browser is told to accept it (as it would a
      // clinic's real one).
      browser = await launchBrowser({ args: [...CHROMIUM_ARGS, '--ignore-certificate-errors'] });
    }),
    { timeout: TEST_TIMEOUT },
  );

  after(async () => {
    await unblock();
    await browser?.close().catch(() => {});
    if (server) await server.stop();
    coturn?.kill('SIGTERM');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** A call in a new room; returns how long each page took from Join to connected, and both pages. */
  async function call(label) {
    const room = `e2e-turn-${randomBytes(4).toString('hex')}`;
    const [doctorToken, patientToken] = await Promise.all([
      makeToken(server.env, room, 'Доктор', 'doctor'),
      makeToken(server.env, room, 'Пациент', 'patient'),
    ]);
    const [doctor, patient] = await Promise.all([
      openCallPage(browser, server.base, `doctor-${label}`, doctorToken),
      openCallPage(browser, server.base, `patient-${label}`, patientToken),
    ]);
    const started = Date.now();
    await Promise.all([byTestId(doctor, 'join').click(), byTestId(patient, 'join').click()]);
    await Promise.all([waitState(doctor, 'connected', 45_000), waitState(patient, 'connected', 45_000)]);
    const connectedMs = Date.now() - started;
    for (const page of [doctor, patient]) {
      await until(`${label}: video decoded`, async () => (await received(page)).framesDecoded > 10, 45_000);
    }
    return { connectedMs, doctor, patient };
  }

  /**
   * The selected candidate pair's local candidate: its type, protocol and, for a relay, how it
   * reaches TURN.
   */
  const path = (page) =>
    page.evaluate(async () => {
      const stats = await window.vizit.pc().getStats();
      let out = null;
      stats.forEach((r) => {
        if (r.type === 'transport' && r.selectedCandidatePairId) {
          const local = stats.get(stats.get(r.selectedCandidatePairId).localCandidateId);
          out = {
            type: local.candidateType,
            protocol: local.protocol,
            relayProtocol: local.relayProtocol ?? null,
          };
        }
      });
      return out;
    });

  async function hangUpBoth({ doctor, patient }) {
    await hangUp(patient);
    await hangUp(doctor);
    await Promise.all([doctor.context().close(), patient.context().close()]);
  }

  /**
   * A call while `blocked` rules drop traffic (and UDP between the pages and the SFU, but
   * coturn's relay); none: nothing is dropped. Both pages must end up on `expected`; the time
   * from Join to connected is printed as `what`.
   */
  async function callThrough(label, blocked, expected, what) {
    if (blocked !== null) await block(sfuPort, blocked);
    try {
      const c = await call(label);
      for (const page of [c.doctor, c.patient]) assert.deepEqual(await path(page), expected);
      console.log(`${what}: connected ${c.connectedMs} ms after Join`);
      await hangUpBoth(c);
    } finally {
      if (blocked !== null) await unblock();
    }
  }

  test(
    'each join gets TURN credentials; with UDP open the call goes direct',
    { timeout: TEST_TIMEOUT },
    diagnosed(() =>
      callThrough('udp', null, { type: 'host', protocol: 'udp', relayProtocol: null }, 'direct UDP'),
    ),
  );

  test(
    'no UDP to the SFU and no TURN server reachable: the call goes over ICE-TCP to the SFU',
    { timeout: TEST_TIMEOUT },
    diagnosed(() =>
      callThrough(
        'ice-tcp',
        [`udp dport ${TURN_PORT} drop`, `tcp dport ${TURN_PORT} drop`, `tcp dport ${TURNS_PORT} drop`],
        // Chromium announces its active TCP candidate with port 9 (RFC 6544): the connection's
        // real port makes the local end peer-reflexive.
        { type: 'prflx', protocol: 'tcp', relayProtocol: null },
        'ICE-TCP',
      ),
    ),
  );

  test(
    'no UDP to the SFU nor to the TURN server, no ICE-TCP: the call goes through TURN over TCP',
    { timeout: TEST_TIMEOUT },
    diagnosed(() =>
      callThrough(
        'tcp',
        // TLS to coturn dropped too: with both open, the browser keeps whichever relay answers
        // first, and once that was TLS.
        [`tcp dport ${sfuTcpPort} drop`, `udp dport ${TURN_PORT} drop`, `tcp dport ${TURNS_PORT} drop`],
        { type: 'relay', protocol: 'udp', relayProtocol: 'tcp' },
        'TURN over TCP',
      ),
    ),
  );

  test(
    'only TLS to the TURN server gets through: the call goes through TURN over TLS',
    { timeout: TEST_TIMEOUT },
    diagnosed(() =>
      callThrough(
        'tls',
        [`tcp dport ${sfuTcpPort} drop`, `udp dport ${TURN_PORT} drop`, `tcp dport ${TURN_PORT} drop`],
        { type: 'relay', protocol: 'udp', relayProtocol: 'tls' },
        'TURN over TLS',
      ),
    ),
  );
});
