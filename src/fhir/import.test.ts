import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type CustosError, isCustosError } from '../errors.ts';
import { parseBundle } from './import.ts';

const MAX = 1024 * 1024;
const PSY = { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'PSY' };

/** A synthetic patient; the values are invented and distinctive, so tests can look for leaks. */
const patient = (extra: object = {}) => ({
  resourceType: 'Patient',
  id: 'p1',
  name: [{ use: 'official', family: 'Zyxwvut', given: ['Qwerty'] }],
  birthDate: '1990-02-03',
  gender: 'male',
  ...extra,
});
const encounter = (extra: object = {}) => ({
  resourceType: 'Encounter',
  id: 'e1',
  status: 'finished',
  class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'VR' },
  subject: { reference: 'urn:uuid:p' },
  period: { start: '2024-05-06T07:08:09Z' },
  ...extra,
});
const observation = (extra: object = {}) => ({
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '29463-7' }] },
  subject: { reference: 'urn:uuid:p' },
  effectiveDateTime: '2024-05-06T07:08:09Z',
  valueQuantity: { value: 81.5, unit: 'kg' },
  ...extra,
});
const bundle = (resources: unknown[], extra: object = {}) =>
  JSON.stringify({
    resourceType: 'Bundle',
    type: 'transaction',
    entry: resources.map((resource, i) => ({ fullUrl: i === 0 ? 'urn:uuid:p' : `urn:uuid:r${i}`, resource })),
    ...extra,
  });

/** Runs parseBundle expecting CUSTOS_ERR_IMPORT; returns the error. */
function rejection(text: string, maxBytes = MAX): CustosError {
  try {
    parseBundle(text, { maxBytes });
  } catch (e) {
    expect(isCustosError(e, 'CUSTOS_ERR_IMPORT')).toBe(true);
    return e as CustosError;
  }
  throw new Error('expected parseBundle to reject');
}

function expectRejection(text: string, message: string, secrets: string[] = []): void {
  const e = rejection(text);
  expect(e.message).toBe(message);
  expect(e.message).not.toContain('\n');
  for (const s of ['Zyxwvut', 'Qwerty', '1990-02-03', ...secrets]) {
    expect(e.message).not.toContain(s);
  }
}

describe('parseBundle rejects', () => {
  it('input over the size limit, before parsing it', () => {
    const e = rejection(`${bundle([patient()])}${' '.repeat(100)}`, 100);
    expect(e.message).toMatch(/^bundle is \d+ bytes, over the size limit of 100 bytes$/);
    expect(e.message).not.toContain('Zyxwvut');
  });

  it('bad JSON, saying where and not quoting it', () => {
    expectRejection(
      '{\n  "resourceType": "Bundle",\n  "name": Zyxwvut\n}',
      'bundle is not valid JSON: unexpected token',
    );
    expectRejection(
      '{\n  "resourceType": "Bundle",\n  "birthDate": 1990-02-03\n}',
      "bundle is not valid JSON: expected ',' or '}' after property value at line 3 column 20",
    );
    expectRejection(
      '{"resourceType": "Bundle", "name": "Zyxwvut',
      'bundle is not valid JSON: unterminated string at line 1 column 44',
    );
    expectRejection('', 'bundle is not valid JSON: unexpected end of input');
  });

  it('a document that is not a Bundle, or a Bundle of another type', () => {
    expectRejection(JSON.stringify(patient()), 'resourceType: not a FHIR Bundle');
    expectRejection('[1, 2]', 'resourceType: not a FHIR Bundle');
    expectRejection(
      bundle([patient()], { type: 'searchset' }),
      'type: must be one of collection, transaction, batch, document',
    );
  });

  it('an unsupported resource type', () => {
    expectRejection(
      bundle([
        patient(),
        encounter(),
        { resourceType: 'AllergyIntolerance', patient: { reference: 'urn:uuid:p' } },
      ]),
      'entry[2].resource.resourceType: unsupported resource type',
    );
  });

  it('a missing required field', () => {
    expectRejection(
      bundle([patient(), observation({ code: undefined })]),
      'entry[1].resource.code: is required',
    );
    expectRejection(
      bundle([patient(), observation({ subject: undefined })]),
      'entry[1].resource.subject: is required',
    );
    expectRejection(bundle([patient({ birthDate: undefined })]), 'entry[0].resource.birthDate: is required');
    expectRejection(
      bundle([patient(), encounter({ period: undefined })]),
      'entry[1].resource.period.start: is required',
    );
    expectRejection(
      bundle([{ resourceType: 'Patient' }, patient()]),
      'entry[0].resource.name.given: must have at least one given name',
    );
    expectRejection(
      JSON.stringify({ resourceType: 'Bundle', type: 'batch', entry: [{}] }),
      'entry[0].resource: is required',
    );
  });

  it('a malformed field, without its value', () => {
    expectRejection(
      bundle([patient({ birthDate: '03/02/1990' })]),
      'entry[0].resource.birthDate: must be a date YYYY-MM-DD',
      ['03/02/1990'],
    );
    expectRejection(
      bundle([patient({ telecom: [{ system: 'email', value: 'Zyxwvut-at-nowhere' }] })]),
      'entry[0].resource.telecom: must be an e-mail address',
      ['Zyxwvut-at-nowhere'],
    );
    expectRejection(
      bundle([patient(), observation({ status: 'Zyxwvut' })]),
      'entry[1].resource.status: Invalid option: expected one of "registered"|"preliminary"|"final"|"amended"|"cancelled"|"entered-in-error"',
    );
    expectRejection(
      bundle([patient(), observation({ effectiveDateTime: 20240506 })]),
      'entry[1].resource.effectiveDateTime: must be a string',
    );
    expectRejection(
      bundle([
        patient(),
        {
          resourceType: 'DocumentReference',
          status: 'current',
          subject: { reference: 'urn:uuid:p' },
          date: '2024-05-06T07:08:09Z',
          category: [
            {
              coding: [
                {
                  system: 'http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category',
                  code: 'clinical-note',
                },
              ],
            },
          ],
          content: [{ attachment: { contentType: 'text/plain', data: 'Zyxwvut!!' } }],
        },
      ]),
      'entry[1].resource.content[0].attachment.data: must be base64',
      ['Zyxwvut!!'],
    );
  });

  it('a reference to a resource that is not in the bundle', () => {
    expectRejection(
      bundle([patient(), observation({ subject: { reference: 'urn:uuid:Zyxwvut' } })]),
      'entry[1].resource.subject.reference: does not name a Patient in the bundle',
      ['urn:uuid:Zyxwvut'],
    );
    expectRejection(
      bundle([patient(), observation({ encounter: { reference: 'Encounter/e9' } })]),
      'entry[1].resource.encounter.reference: does not name an Encounter in the bundle',
    );
    // A reference must name a resource of the right type, not just any entry.
    expectRejection(
      bundle([patient(), encounter(), observation({ subject: { reference: 'urn:uuid:r1' } })]),
      'entry[2].resource.subject.reference: does not name a Patient in the bundle',
    );
  });

  it('a duplicate fullUrl', () => {
    const text = JSON.stringify({
      resourceType: 'Bundle',
      type: 'collection',
      entry: [
        { fullUrl: 'urn:uuid:p', resource: patient() },
        { fullUrl: 'urn:uuid:p', resource: patient({ id: 'p2' }) },
      ],
    });
    expectRejection(text, 'entry[1].fullUrl: duplicates the fullUrl of entry[0]');
  });

  it('anything malformed with CUSTOS_ERR_IMPORT and nothing else', () => {
    fc.assert(
      fc.property(
        fc.array(fc.jsonValue(), { maxLength: 4 }),
        fc.constantFrom('Patient', 'Observation', 'Encounter', 'DocumentReference'),
        (values, type) => {
          const resources = values.map((v) =>
            typeof v === 'object' && v !== null && !Array.isArray(v) ? { ...v, resourceType: type } : v,
          );
          try {
            parseBundle(bundle([patient(), ...resources]), { maxBytes: MAX });
          } catch (e) {
            expect(isCustosError(e, 'CUSTOS_ERR_IMPORT')).toBe(true);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('parseBundle reads', () => {
  it('references as Patient/<id> and Encounter/<id>, and orders encounters first', () => {
    const plan = parseBundle(
      JSON.stringify({
        resourceType: 'Bundle',
        type: 'collection',
        entry: [
          { fullUrl: 'http://example.org/fhir/Patient/p1', resource: patient() },
          {
            fullUrl: 'http://example.org/fhir/Observation/o1',
            resource: observation({
              id: 'o1',
              subject: { reference: 'Patient/p1' },
              encounter: { reference: 'Encounter/e1' },
            }),
          },
          {
            fullUrl: 'http://example.org/fhir/Encounter/e1',
            resource: encounter({ subject: { reference: 'Patient/p1' } }),
          },
        ],
      }),
      { maxBytes: MAX },
    );
    const records = plan.patients[0]?.records ?? [];
    expect(records.map((r) => r.kind)).toEqual(['encounter', 'observation']);
    expect(records[1]?.encounterRef).toBe('http://example.org/fhir/Encounter/e1');
    expect(records[0]?.body).toMatchObject({ type: 'telehealth', class: 'VR' });
  });

  it('security labels as sensitivity, and skips resources entered in error', () => {
    const plan = parseBundle(
      bundle([
        patient(),
        observation({ meta: { security: [PSY] } }),
        observation({
          meta: {
            security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }],
          },
        }),
        observation(),
        encounter({ status: 'entered-in-error' }),
      ]),
      { maxBytes: MAX },
    );
    expect(plan.patients[0]?.records.map((r) => r.sensitivity)).toEqual([
      'psychotherapy',
      'restricted',
      'normal',
    ]);
    expect(plan.counts).toEqual({ Patient: 1, Observation: 3 });
  });

  it('gender identity in either extension form, identifiers by type code or system, the usual name', () => {
    const plan = parseBundle(
      bundle([
        patient({
          extension: [
            {
              url: 'http://hl7.org/fhir/StructureDefinition/patient-genderIdentity',
              valueCodeableConcept: { text: 'agender' },
            },
          ],
          identifier: [
            { system: 'http://hl7.org/fhir/sid/us-ssn', value: '000-00-0000' },
            {
              type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] },
              value: 'M-1',
            },
            { system: 'urn:example:unknown', value: 'X-1' },
          ],
          name: [
            { use: 'usual', given: ['Q'] },
            { use: 'official', family: 'Zyxwvut', given: ['Qwerty'] },
          ],
        }),
      ]),
      { maxBytes: MAX },
    );
    expect(plan.patients[0]?.identity).toMatchObject({
      name: { given: ['Qwerty'], family: 'Zyxwvut', preferred: 'Q' },
      gender: 'agender',
      identifiers: [
        { type: 'national', system: 'http://hl7.org/fhir/sid/us-ssn', value: '000-00-0000' },
        { type: 'mrn', value: 'M-1' },
      ],
    });
  });

  it('a document bundle, skipping its Composition', () => {
    const text = JSON.stringify({
      resourceType: 'Bundle',
      type: 'document',
      entry: [
        { fullUrl: 'urn:uuid:c', resource: { resourceType: 'Composition', status: 'final' } },
        { fullUrl: 'urn:uuid:p', resource: patient() },
      ],
    });
    expect(parseBundle(text, { maxBytes: MAX }).counts).toEqual({ Patient: 1 });
  });
});
