import { beforeAll, describe, expect, it } from 'vitest';
import { toFhirBundle } from './export.ts';
import {
  ENCOUNTER_ID,
  encounter,
  PATIENT_ID,
  patient,
  psychotherapyNote,
  record,
  records,
} from './fixtures.testkit.ts';
import type * as fhir4 from './r4.ts';
import { fhirProblems, loadFhirDefinitions } from './validate.testkit.ts';

const resources = (b: fhir4.Bundle) => (b.entry ?? []).map((e) => e.resource);
const byType = <T extends fhir4.Resource['resourceType']>(b: fhir4.Bundle, t: T) =>
  resources(b).filter((r): r is Extract<fhir4.Resource, { resourceType: T }> => r?.resourceType === t);

describe('toFhirBundle', () => {
  beforeAll(loadFhirDefinitions, 60_000);

  it('has a structural check that catches missing, malformed and empty elements', () => {
    const broken = JSON.parse(JSON.stringify(toFhirBundle(patient, records)));
    const entries = broken.entry as { resource: Record<string, unknown> }[];
    const obs = entries.find((e) => e.resource.resourceType === 'Observation');
    const cond = entries.find((e) => e.resource.resourceType === 'Condition');
    if (obs === undefined || cond === undefined) {
      throw new Error('fixture lacks an Observation or a Condition');
    }
    delete obs.resource.status;
    obs.resource.note = [];
    cond.resource.onsetDateTime = '2024-13-45';
    const problems = fhirProblems(broken).join('\n');
    expect(problems).toMatch(/resource\.status: Missing required property/);
    expect(problems).toMatch(/Invalid dateTime format/);
    expect(problems).toMatch(/note: empty array/);
  });

  it('exports a collection bundle that passes FHIR R4 structural validation', () => {
    const bundle = toFhirBundle(patient, [...records, psychotherapyNote]);
    expect(bundle.resourceType).toBe('Bundle');
    expect(bundle.type).toBe('collection');
    // Validate the JSON as it goes over the wire, not the in-memory object.
    expect(fhirProblems(JSON.parse(JSON.stringify(bundle)))).toEqual([]);
  });

  it('names every entry by urn:uuid of its Custos id and references entries by those URNs', () => {
    const bundle = toFhirBundle(patient, records);
    for (const e of bundle.entry ?? []) {
      expect(e.fullUrl).toBe(`urn:uuid:${e.resource?.id}`);
    }
    expect(bundle.entry?.[0]?.fullUrl).toBe(`urn:uuid:${PATIENT_ID}`);
    const [obs] = byType(bundle, 'Observation');
    expect(obs?.subject?.reference).toBe(`urn:uuid:${PATIENT_ID}`);
    expect(obs?.encounter?.reference).toBe(`urn:uuid:${ENCOUNTER_ID}`);
  });

  it('never exports psychotherapy notes', () => {
    const bundle = toFhirBundle(patient, [...records, psychotherapyNote]);
    expect(resources(bundle).map((r) => r?.id)).not.toContain(psychotherapyNote.id);
    expect(JSON.stringify(bundle)).not.toContain(
      Buffer.from(psychotherapyNote.body.body as string).toString('base64'),
    );
    expect(bundle.entry).toHaveLength(1 + records.length);
  });

  it('labels restricted records with v3-Confidentiality R and only those', () => {
    const bundle = toFhirBundle(patient, records);
    const labelled = resources(bundle).filter((r) => r?.meta?.security !== undefined);
    expect(labelled).toHaveLength(1);
    expect(labelled[0]?.meta?.security).toEqual([
      { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' },
    ]);
  });

  it('exports entered-in-error records with FHIR status entered-in-error, still valid', () => {
    const wrong = records.map((r) => ({ ...r, status: 'entered-in-error' as const }));
    const bundle = toFhirBundle(patient, wrong);
    expect(fhirProblems(JSON.parse(JSON.stringify(bundle)))).toEqual([]);
    for (const r of resources(bundle)) {
      if (r === undefined || r.resourceType === 'Patient') {
        continue;
      }
      if (r.resourceType === 'Condition') {
        expect(r.verificationStatus?.coding?.[0]?.code).toBe('entered-in-error');
        expect(r.clinicalStatus).toBeUndefined(); // con-5
      } else {
        expect(r.status).toBe('entered-in-error');
      }
    }
  });

  it('writes the required elements of each resource type', () => {
    const bundle = toFhirBundle(patient, records);
    const [enc] = byType(bundle, 'Encounter');
    expect(enc?.status).toBe('finished');
    expect(enc?.class).toEqual({
      system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode',
      code: 'AMB',
      display: 'ambulatory',
    });
    const [cond] = byType(bundle, 'Condition');
    expect(cond?.clinicalStatus?.coding?.[0]?.system).toBe(
      'http://terminology.hl7.org/CodeSystem/condition-clinical',
    );
    expect(cond?.verificationStatus?.coding?.[0]?.system).toBe(
      'http://terminology.hl7.org/CodeSystem/condition-ver-status',
    );
    const [plan] = byType(bundle, 'CarePlan');
    expect(plan).toMatchObject({
      status: 'active',
      intent: 'plan',
      subject: { reference: `urn:uuid:${PATIENT_ID}` },
    });
    const [med] = byType(bundle, 'MedicationStatement');
    expect(med?.medicationCodeableConcept?.coding?.[0]?.code).toBe('312938');
    for (const doc of byType(bundle, 'DocumentReference')) {
      expect(doc.status).toBe('current');
      expect(doc.content[0]?.attachment.contentType).toBeDefined();
    }
  });

  it('leaves out a reference to an encounter that is not in the export', () => {
    const [obs] = records;
    const bundle = toFhirBundle(patient, obs === undefined ? [] : [obs]);
    const [o] = byType(bundle, 'Observation');
    expect(o?.encounter).toBeUndefined();
    expect(fhirProblems(JSON.parse(JSON.stringify(bundle)))).toEqual([]);
  });

  it('exports a minimal patient and records with no empty elements', () => {
    const minimal = {
      ...patient,
      identity: {
        name: { given: ['Min'], family: 'Imal' },
        birthDate: '2001-01-01',
        sex: 'unknown' as const,
        identifiers: [],
      },
    };
    const bare = [
      encounter,
      record('observation', {
        status: 'preliminary',
        code: { system: 'http://loinc.org', code: '1-8' },
        effective: '2024-01-01T00:00:00Z',
      }),
      record('therapy-plan', { status: 'draft', title: 'T', goals: [], period: {} }),
      record('note', { body: 'b', date: '2024-01-01T00:00:00Z' }),
      record('document', { title: 'D', contentType: 'image/png', date: '2024-01-01T00:00:00Z' }),
    ];
    const bundle = toFhirBundle(minimal, bare);
    expect(fhirProblems(JSON.parse(JSON.stringify(bundle)))).toEqual([]);
  });
});
