import { beforeAll, describe, expect, it } from 'vitest';
import { fhirProblems, loadFhirDefinitions } from '../fhir/validate.testkit.ts';
import type { StoredEntry } from './canonical.ts';
import { type AuditEvent, toAuditEvent, writeAuditBundle } from './fhir.ts';

const PRACTICE = '0b6c5a4e-2f7e-4c55-9d7c-3f1f0c8e9a11';
const RECORD = '7d0e4c2a-1b3f-4a5e-8c6d-9e0f1a2b3c4d';

/** A synthetic stored entry: ids and pseudonyms only, like every audit entry. */
const entry = (overrides: Partial<StoredEntry> = {}): StoredEntry => ({
  seq: '42',
  at: new Date('2026-03-02T09:00:00.123Z'),
  practice_id: PRACTICE,
  actor_kind: 'user',
  actor_id: 'alice',
  role: 'clinician',
  on_behalf_of: null,
  action: 'read',
  resource_type: 'patient',
  resource_id: null,
  patient_pseudonym: 'ps_0001',
  purpose: 'treatment',
  outcome: 'success',
  reason: null,
  client_address: '127.0.0.1',
  user_agent_hash: null,
  session_id: 'sess-alice',
  request_id: 'req-1',
  detail: null,
  ...overrides,
});

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const V3 = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
const RESTFUL = 'http://hl7.org/fhir/restful-interaction';

const wire = (e: AuditEvent) => JSON.parse(JSON.stringify(e)) as AuditEvent;

/** A variety of entries covering every branch of the mapping. */
const variety: StoredEntry[] = [
  entry(),
  entry({ action: 'create', resource_type: 'record', resource_id: RECORD, detail: { kind: 'note' } }),
  entry({
    action: 'update',
    resource_type: 'record',
    resource_id: RECORD,
    outcome: 'error',
    reason: 'CUSTOS_ERR_VERSION_CONFLICT',
  }),
  entry({ action: 'read', outcome: 'denied', reason: 'no-relationship', actor_id: 'mallory' }),
  entry({
    action: 'search',
    patient_pseudonym: null,
    detail: { count: 2, pseudonyms: ['ps_0001', 'ps_0002'] },
  }),
  entry({ action: 'list', resource_type: 'record', detail: { kind: 'note' } }),
  entry({ action: 'history', resource_type: 'record', resource_id: RECORD }),
  entry({ action: 'export', resource_type: 'chart', purpose: 'patient-request' }),
  entry({
    actor_kind: 'system',
    actor_id: 'system',
    role: 'system',
    action: 'import',
    resource_type: 'bundle',
    patient_pseudonym: null,
    purpose: 'import',
    client_address: null,
    on_behalf_of: 'privacy-officer',
    detail: { Patient: 3, Observation: 12 },
  }),
  entry({
    actor_kind: 'system',
    actor_id: 'system',
    role: 'system',
    action: 'report',
    resource_type: 'audit-report',
    purpose: 'audit',
    client_address: null,
    detail: { kind: 'patient', rows: 7, since: '2026-01-01T00:00:00.000Z' },
  }),
  entry({
    action: 'login',
    resource_type: 'session',
    patient_pseudonym: null,
    client_address: 'ws-12.clinic.example',
  }),
  entry({ action: 'logout', resource_type: 'session', patient_pseudonym: null }),
  entry({
    action: 'login-failed',
    resource_type: 'session',
    patient_pseudonym: null,
    outcome: 'denied',
    reason: 'bad-password',
  }),
  entry({ action: 'mfa-verified', resource_type: 'session', patient_pseudonym: null }),
  entry({ action: 'read', purpose: 'emergency', client_address: '2001:db8::1' }),
  entry({
    action: 'rotate',
    resource_type: 'key',
    patient_pseudonym: null,
    purpose: 'maintenance',
    actor_kind: 'system',
    actor_id: 'system',
    role: 'system',
  }),
];

describe('toAuditEvent', () => {
  beforeAll(loadFhirDefinitions, 60_000);

  it('maps a patient read in the BALP style', () => {
    expect(toAuditEvent(entry())).toEqual({
      resourceType: 'AuditEvent',
      id: '42',
      type: { system: DCM, code: '110110', display: 'Patient Record' },
      subtype: [
        { system: 'urn:custos:audit-action', code: 'read' },
        { system: RESTFUL, code: 'read' },
      ],
      action: 'R',
      recorded: '2026-03-02T09:00:00.123Z',
      outcome: '0',
      purposeOfEvent: [{ coding: [{ system: V3, code: 'TREAT', display: 'treatment' }], text: 'treatment' }],
      agent: [
        {
          who: { identifier: { system: 'urn:custos:user', value: 'alice' } },
          requestor: true,
          role: [{ text: 'clinician' }],
          network: { address: '127.0.0.1', type: '2' },
        },
      ],
      source: {
        observer: { identifier: { system: 'urn:custos:practice', value: PRACTICE }, display: 'Custos' },
        type: [
          {
            system: 'http://terminology.hl7.org/CodeSystem/security-source-type',
            code: '4',
            display: 'Application Server',
          },
        ],
      },
      entity: [
        {
          what: { identifier: { system: 'urn:custos:pseudonym', value: 'ps_0001' } },
          type: {
            system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type',
            code: '1',
            display: 'Person',
          },
          role: {
            system: 'http://terminology.hl7.org/CodeSystem/object-role',
            code: '1',
            display: 'Patient',
          },
        },
        {
          what: { display: 'patient' },
          type: {
            system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type',
            code: '2',
            display: 'System Object',
          },
          role: {
            system: 'http://terminology.hl7.org/CodeSystem/object-role',
            code: '4',
            display: 'Domain Resource',
          },
        },
      ],
    });
  });

  it.each([
    ['success', '0', undefined],
    ['denied', '4', 'no-relationship'],
    ['error', '8', 'internal'],
    ['something-new', '8', undefined],
  ])('maps outcome %s to %s with the reason code as outcomeDesc', (outcome, code, reason) => {
    const e = toAuditEvent(entry({ outcome, reason: reason ?? null }));
    expect(e.outcome).toBe(code);
    expect(e.outcomeDesc).toBe(reason);
  });

  it.each([
    ['read', 'R', 'read'],
    ['history', 'R', 'history-instance'],
    ['export', 'R', 'operation'],
    ['create', 'C', 'create'],
    ['import', 'C', 'transaction'],
    ['update', 'U', 'update'],
    ['care-team', 'U', 'update'],
    ['delete', 'D', 'delete'],
    ['search', 'E', 'search-type'],
    ['list', 'E', 'search-type'],
    ['report', 'E', 'operation'],
    ['sign', 'U', 'update'],
    ['amend', 'C', 'create'],
    ['post', 'C', 'create'],
    ['close', 'U', 'update'],
    ['merge', 'U', 'operation'],
    ['unmerge', 'U', 'operation'],
    ['download-token', 'E', 'operation'],
    ['redeem', 'R', 'read'],
    ['disclose', 'R', 'operation'],
    ['break-glass', 'E', undefined],
  ])('maps action %s to %s (RESTful interaction %s)', (action, code, interaction) => {
    const e = toAuditEvent(entry({ action }));
    expect(e.action).toBe(code);
    expect(e.subtype?.[0]).toEqual({ system: 'urn:custos:audit-action', code: action });
    expect(e.subtype?.find((s) => s.system === RESTFUL)?.code).toBe(interaction);
  });

  it.each([
    ['treatment', 'TREAT'],
    ['emergency', 'ETREAT'],
    ['payment', 'HPAYMT'],
    ['operations', 'HOPERAT'],
    ['patient-request', 'PATRQT'],
  ])('maps purpose %s to PurposeOfUse %s', (purpose, code) => {
    const [p] = toAuditEvent(entry({ purpose })).purposeOfEvent ?? [];
    expect(p?.coding).toEqual([expect.objectContaining({ system: V3, code })]);
    expect(p?.text).toBe(purpose);
  });

  it.each(['import', 'export', 'audit', 'maintenance'])('sends purpose %s as text only', (purpose) => {
    expect(toAuditEvent(entry({ purpose })).purposeOfEvent).toEqual([{ text: purpose }]);
  });

  it('types login events as User Authentication, audit use as Audit Log Used, the rest as rest', () => {
    const type = (o: Partial<StoredEntry>) => toAuditEvent(entry({ patient_pseudonym: null, ...o }));
    expect(type({ action: 'login', resource_type: 'session' }).type.code).toBe('110114');
    expect(type({ action: 'login', resource_type: 'session' }).subtype?.[1]).toEqual({
      system: DCM,
      code: '110122',
      display: 'Login',
    });
    expect(type({ action: 'session-timeout', resource_type: 'session' }).subtype?.[1]?.code).toBe('110123');
    expect(type({ action: 'mfa-failed', resource_type: 'session' }).type.code).toBe('110114');
    expect(type({ action: 'report', resource_type: 'audit-report' }).type.code).toBe('110101');
    expect(type({ action: 'search', resource_type: 'patient' }).type.code).toBe('110110');
    expect(type({ action: 'rotate', resource_type: 'key' }).type).toEqual({
      system: 'http://terminology.hl7.org/CodeSystem/audit-event-type',
      code: 'rest',
      display: 'Restful Operation',
    });
  });

  it('names the system actor, the responsible user and a machine-name address', () => {
    const e = toAuditEvent(
      entry({
        actor_kind: 'system',
        actor_id: 'system',
        on_behalf_of: 'dr-who',
        client_address: 'ws-1.example',
      }),
      { practiceId: 'practice-a' },
    );
    expect(e.agent).toEqual([
      {
        who: { identifier: { system: 'urn:custos:system', value: 'system' } },
        requestor: true,
        role: [{ text: 'clinician' }],
        network: { address: 'ws-1.example', type: '1' },
      },
      {
        type: {
          coding: [
            {
              system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType',
              code: 'RESP',
              display: 'responsible party',
            },
          ],
        },
        who: { identifier: { system: 'urn:custos:user', value: 'dr-who' } },
        requestor: false,
      },
    ]);
    expect(e.source.observer.identifier?.value).toBe('practice-a');
  });

  it('lists every patient a search returned, and the resource with its id and detail', () => {
    const search = toAuditEvent(
      entry({
        action: 'search',
        patient_pseudonym: null,
        detail: { count: 2, pseudonyms: ['ps_a', 'ps_b'] },
      }),
    );
    expect(search.entity?.map((x) => x.what?.identifier?.value ?? x.what?.display)).toEqual([
      'ps_a',
      'ps_b',
      'patient',
    ]);
    expect(search.entity?.[2]?.detail).toEqual([{ type: 'count', valueString: '2' }]);
    const created = toAuditEvent(entry({ action: 'create', resource_type: 'record', resource_id: RECORD }));
    expect(created.entity?.[1]?.what).toEqual({
      identifier: { system: 'urn:custos:record', value: RECORD },
      display: 'record',
    });
  });

  it('produces resources that pass FHIR R4 structural validation', () => {
    for (const e of variety) {
      expect(fhirProblems(wire(toAuditEvent(e))), `${e.action} ${e.outcome}`).toEqual([]);
    }
  });

  it('has a validation that fails on a broken AuditEvent (the check can fail)', () => {
    const broken = wire(toAuditEvent(entry())) as unknown as Record<string, unknown>;
    delete broken.recorded;
    broken.outcome = '5';
    expect(fhirProblems(broken).join('\n')).toMatch(/recorded/);
  });
});

describe('writeAuditBundle', () => {
  beforeAll(loadFhirDefinitions, 60_000);

  async function* pages(size: number) {
    for (let i = 0; i < variety.length; i += size) {
      yield variety.slice(i, i + size).map((e, j) => ({ ...e, seq: String(i + j + 1) }));
    }
  }

  it('streams pages into one valid collection Bundle', async () => {
    const chunks: string[] = [];
    const n = await writeAuditBundle(
      pages(5),
      (c) => {
        chunks.push(c);
      },
      { timestamp: new Date('2026-03-12T00:00:00Z') },
    );
    expect(n).toBe(variety.length);
    expect(chunks.length).toBeGreaterThan(3);
    const bundle = JSON.parse(chunks.join(''));
    expect(bundle).toMatchObject({
      resourceType: 'Bundle',
      type: 'collection',
      timestamp: '2026-03-12T00:00:00.000Z',
    });
    expect(bundle.entry.map((x: { fullUrl: string }) => x.fullUrl)).toEqual(
      variety.map((_, i) => `urn:custos:audit-entry:${i + 1}`),
    );
    expect(fhirProblems(bundle)).toEqual([]);
  });

  it('writes a valid bundle with no entry element when the trail is empty', async () => {
    let out = '';
    async function* none(): AsyncGenerator<StoredEntry[]> {}
    expect(
      await writeAuditBundle(none(), (c) => {
        out += c;
      }),
    ).toBe(0);
    const bundle = JSON.parse(out);
    expect(bundle.entry).toBeUndefined();
    expect(fhirProblems(bundle)).toEqual([]);
  });
});
