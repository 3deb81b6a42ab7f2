import { describe, expect, it } from 'vitest';
import { toFhirBundle } from './export.ts';
import { AUTHOR, ENCOUNTER_ID, patient, psychotherapyNote, records } from './fixtures.testkit.ts';
import { parseBundle } from './import.ts';

const MAX = 10 * 1024 * 1024;

describe('FHIR round trip', () => {
  const plan = parseBundle(JSON.stringify(toFhirBundle(patient, [...records, psychotherapyNote])), {
    maxBytes: MAX,
  });
  const [planned] = plan.patients;

  it('gives back the patient identity unchanged', () => {
    expect(plan.patients).toHaveLength(1);
    expect(planned?.fullUrl).toBe(`urn:uuid:${patient.id}`);
    expect(planned?.identity).toStrictEqual(patient.identity);
  });

  it('gives back every record body unchanged, encounter links as references, psychotherapy notes absent', () => {
    const got = planned?.records ?? [];
    expect(got).toHaveLength(records.length);
    for (const r of records) {
      const p = got.find((g) => g.localRef === `urn:uuid:${r.id}`);
      const { encounterId, ...body } = r.body as { encounterId?: string };
      expect(p?.kind).toBe(r.kind);
      expect(p?.sensitivity).toBe(r.sensitivity);
      expect(p?.body).toStrictEqual(body);
      expect(p?.encounterRef).toBe(encounterId === undefined ? undefined : `urn:uuid:${encounterId}`);
    }
    expect(got.map((g) => g.localRef)).not.toContain(`urn:uuid:${psychotherapyNote.id}`);
  });

  it('puts encounters before the records that point to them', () => {
    expect(planned?.records[0]?.localRef).toBe(`urn:uuid:${ENCOUNTER_ID}`);
    expect(planned?.records.filter((r) => r.kind === 'encounter')).toHaveLength(1);
  });

  it('keeps the author where FHIR has a place for it', () => {
    const authored = (planned?.records ?? []).filter((r) => r.authorId !== undefined).map((r) => r.kind);
    expect(authored.sort()).toEqual(['condition', 'document', 'note', 'procedure', 'therapy-plan']);
    expect(new Set((planned?.records ?? []).map((r) => r.authorId).filter(Boolean))).toEqual(
      new Set([AUTHOR]),
    );
  });

  it('counts resources per FHIR type', () => {
    expect(plan.counts).toEqual({
      Patient: 1,
      Encounter: 1,
      Observation: 1,
      Condition: 1,
      Procedure: 1,
      MedicationStatement: 1,
      CarePlan: 1,
      DocumentReference: 2,
    });
  });
});
