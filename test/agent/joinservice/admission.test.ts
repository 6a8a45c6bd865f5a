// The one admission path with fakes for the challenge, the verifier and the audit log: each request kind's
// audit-failure policy, refusals audited before they are thrown, and the order verify → identify → authorize →
// prepare → audit, so nothing is handed out before its decision is on record.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  type AdmissionDeps,
  AUDIT_FAILURE,
  admit,
  type RequestKind,
} from '../../../agent/joinservice/admission.js';
import { AdmissionRegistry } from '../../../agent/joinservice/admissions.js';
import { Inventory, Refusal } from '../../../agent/joinservice/authorization.js';
import type { PendingChallenge, VerifiedAttestation } from '../../../attestation/atls/index.js';
import { AttestationDocument, Challenge } from '../../../gen/proto/attestation.js';
import { recordingLog } from '../../harness/recording-log.js';
import { tempDir } from '../../harness/temp-dir.js';

const DISK = '3b0b8c2e-2c2a-4a0e-9f7e-0d7b1b6f0a11';
const EK = Buffer.alloc(32, 0xa0);
const CLUSTER_PCR = Buffer.alloc(32, 0x15);
const PEER = 'ipv4:10.0.0.7:41000';
const doc = AttestationDocument.fromPartial({});

const dir = tempDir('sextant-admission-');
let seq = 0;

function verified(pcr15: Buffer): VerifiedAttestation {
  return {
    pcrs: new Map([[15, pcr15]]),
    warnings: [],
    akName: Buffer.alloc(34, 1),
    ekCertificateHash: Buffer.alloc(32, 2),
    ekPublicHash: EK,
  };
}

interface Fixture {
  deps: AdmissionDeps;
  events: string[];
  counted: string[];
  admissions: AdmissionRegistry;
  log: ReturnType<typeof recordingLog>;
}

/** `admitted`: whether the registry already holds this TPM (for rejoin and confirm). */
async function fixture(
  options: { auditFails?: boolean; admitted?: boolean; challenge?: boolean; verifyFails?: Error } = {},
): Promise<Fixture> {
  const events: string[] = [];
  const counted: string[] = [];
  const log = recordingLog();
  const admissions = await AdmissionRegistry.open(join(dir, `r-${seq++}`));
  if (options.admitted) {
    await admissions.record({
      ek: EK.toString('hex'),
      nodeName: 'w-0',
      diskUuid: DISK,
      role: 'worker',
      state: 'pending',
      akName: '',
      ekCertificateHash: '',
      admittedAt: new Date(0).toISOString(),
    });
  }
  const pending: PendingChallenge = {
    challenge: Challenge.fromPartial({}),
    verify: async () => {
      throw new Error('not this one');
    },
  };
  const deps: AdmissionDeps = {
    log,
    audit: {
      append: async (entry) => {
        events.push(`audit ${entry.verdict}`);
        if (options.auditFails) throw new Error('ENOSPC');
      },
      countRefusal: (reason) => {
        counted.push(reason);
      },
    },
    admissions,
    inventory: async () => new Inventory([{ name: 'w-0', role: 'worker', eks: [EK.toString('hex')] }]),
    unlisted: 'worker',
    clusterPcr: CLUSTER_PCR,
    takeChallenge: () => (options.challenge === false ? undefined : pending),
    verify: async () => {
      events.push('verify');
      if (options.verifyFails) throw options.verifyFails;
      return verified(options.admitted ? CLUSTER_PCR : Buffer.alloc(32));
    },
  };
  return { deps, events, counted, admissions, log };
}

const plan = (events: string[]) => ({
  reason: () => 'ok',
  prepare: async () => {
    events.push('prepare');
    return 'ticket';
  },
});

describe('admit: what an audit log that cannot write does, per request kind', () => {
  const cases: { kind: RequestKind; admitted: boolean; outcome: 'refused' | 'admitted' }[] = [
    // a ticket is never handed out unrecorded
    { kind: 'join', admitted: false, outcome: 'refused' },
    // nor a disk key
    { kind: 'rejoin', admitted: true, outcome: 'refused' },
    // a confirmation only takes away (the join token): it goes through, and the failure is logged
    { kind: 'confirm', admitted: true, outcome: 'admitted' },
  ];
  it('the table covers every kind', () => {
    assert.deepEqual(
      cases.map((c) => c.kind),
      Object.keys(AUDIT_FAILURE),
    );
  });
  for (const c of cases) {
    it(`${c.kind}: ${c.outcome}`, async () => {
      const f = await fixture({ auditFails: true, admitted: c.admitted });
      const run = admit(
        f.deps,
        { kind: c.kind, peer: PEER, attestation: doc, diskUuid: DISK },
        plan(f.events),
      );
      if (c.outcome === 'refused') {
        await assert.rejects(run, (err: Error & { code?: grpc.status }) => {
          assert.ok(err instanceof Refusal);
          assert.equal(err.code, grpc.status.UNAVAILABLE);
          assert.match(err.message, /audit log unavailable: ENOSPC/);
          return true;
        });
      } else {
        assert.equal((await run).prepared, 'ticket');
        assert.ok(f.log.lines.some((l) => /audit log: ENOSPC/.test(l)));
      }
      assert.equal(AUDIT_FAILURE[c.kind], c.outcome === 'refused' ? 'refuse' : 'proceed');
      // prepared before the decision was written; nothing after it
      assert.deepEqual(f.events, ['verify', 'prepare', 'audit admitted']);
    });
  }
});

describe('admit: one order for every kind', () => {
  for (const kind of ['join', 'rejoin', 'confirm'] as const) {
    it(`${kind}: verify, prepare, then the audit record, with the node the registry or inventory names`, async () => {
      const f = await fixture({ admitted: kind !== 'join' });
      const got = await admit(f.deps, { kind, peer: PEER, attestation: doc, diskUuid: DISK }, plan(f.events));
      assert.deepEqual(f.events, ['verify', 'prepare', 'audit admitted']);
      assert.equal(got.who.nodeName, 'w-0');
      assert.equal(got.who.ek, EK.toString('hex'));
    });
  }

  const refusals: {
    name: string;
    kind: RequestKind;
    options: Parameters<typeof fixture>[0];
    attestation?: AttestationDocument;
    code: grpc.status;
    error: RegExp;
    events: string[];
    counted?: boolean;
  }[] = [
    {
      name: 'no attestation: counted, not written',
      kind: 'join',
      options: {},
      attestation: undefined,
      code: grpc.status.INVALID_ARGUMENT,
      error: /attestation: required/,
      events: [],
      counted: true,
    },
    {
      name: 'no challenge on the connection: counted, not written',
      kind: 'rejoin',
      options: { admitted: true, challenge: false },
      code: grpc.status.FAILED_PRECONDITION,
      error: /no outstanding challenge/,
      events: [],
      counted: true,
    },
    {
      name: 'a document that does not verify: audited',
      kind: 'join',
      options: { verifyFails: new Error('quote signature invalid') },
      code: grpc.status.PERMISSION_DENIED,
      error: /quote signature invalid/,
      events: ['verify', 'audit refused'],
    },
    {
      name: 'a rejoin of a TPM never admitted: audited, nothing prepared',
      kind: 'rejoin',
      options: {},
      code: grpc.status.PERMISSION_DENIED,
      error: /no admission for this TPM/,
      events: ['verify', 'audit refused'],
    },
    {
      name: 'a refusal stands even when its record cannot be written',
      kind: 'confirm',
      options: { auditFails: true },
      code: grpc.status.PERMISSION_DENIED,
      error: /no admission for this TPM/,
      events: ['verify', 'audit refused'],
    },
  ];
  for (const r of refusals) {
    it(`refuses ${r.name}`, async () => {
      const f = await fixture(r.options);
      await assert.rejects(
        admit(
          f.deps,
          { kind: r.kind, peer: PEER, attestation: 'attestation' in r ? r.attestation : doc, diskUuid: DISK },
          plan(f.events),
        ),
        (err: Error & { code?: grpc.status }) => {
          assert.ok(err instanceof Refusal);
          assert.equal(err.code, r.code);
          assert.match(err.message, r.error);
          return true;
        },
      );
      assert.deepEqual(f.events, r.events);
      assert.equal(f.counted.length > 0, r.counted === true);
    });
  }
});
