import type { ClinicalRecord, Patient, RecordBody, RecordKind, Sensitivity } from '../chart/model.ts';

/** Synthetic test data only: invented people, invented values. */

export const PATIENT_ID = '6f1c2a4e-0b7d-4c1e-9a53-1d2e3f4a5b60';
export const ENCOUNTER_ID = '0a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c60';
export const CLINICIAN = 'user-clin-0001';
export const AUTHOR = 'user-auth-0002';

export const patient: Patient = {
  id: PATIENT_ID,
  version: 3,
  active: true,
  createdAt: new Date('2024-01-02T03:04:05Z'),
  updatedAt: new Date('2024-02-03T04:05:06Z'),
  identity: {
    name: { given: ['Testa', 'Quinn'], family: 'Exampleton', preferred: 'Tess' },
    birthDate: '1980-07-15',
    sex: 'female',
    gender: 'non-binary',
    address: {
      lines: ['1 Fake Street', 'Flat 2'],
      city: 'Nowhere',
      postalCode: '0000 ZZ',
      state: 'Imaginary',
      country: 'NL',
    },
    phone: '+31 00 000 0000',
    email: 'testa.exampleton@example.invalid',
    identifiers: [
      { type: 'mrn', system: 'urn:custos:mrn', value: 'MRN-000123' },
      { type: 'national', system: 'http://fhir.nl/fhir/NamingSystem/bsn', value: '000000012' },
      { type: 'insurance', system: 'urn:example:insurer', value: 'INS-998877' },
    ],
  },
};

let seq = 0;
export function record<K extends RecordKind>(
  kind: K,
  body: RecordBody<K>,
  extra: { id?: string; sensitivity?: Sensitivity; status?: 'active' | 'entered-in-error' } = {},
): ClinicalRecord<K> {
  seq += 1;
  return {
    id: extra.id ?? `00000000-0000-4000-8000-${String(seq).padStart(12, '0')}`,
    kind,
    version: 1,
    sensitivity: extra.sensitivity ?? 'normal',
    authorId: AUTHOR,
    status: extra.status ?? 'active',
    createdAt: new Date('2024-03-01T10:00:00Z'),
    updatedAt: new Date('2024-03-01T10:00:00Z'),
    body,
  };
}

export const encounter = record(
  'encounter',
  {
    type: 'therapy-session',
    status: 'finished',
    class: 'AMB',
    start: '2024-03-01T09:00:00+01:00',
    end: '2024-03-01T09:50:00+01:00',
    reason: 'Synthetic reason for visit',
    location: 'Room 7',
    clinicianId: CLINICIAN,
  },
  { id: ENCOUNTER_ID },
);

/** One record of each kind, every optional field filled; the note is restricted. */
export const records: ClinicalRecord[] = [
  record('observation', {
    status: 'final',
    code: { system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' },
    value: {
      quantity: { value: 72, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
    },
    referenceRange: { low: 60, high: 100, unit: 'beats/minute', text: 'normal adult range' },
    effective: '2024-03-01T09:10:00+01:00',
    encounterId: ENCOUNTER_ID,
    note: 'Synthetic observation note',
  }),
  encounter,
  record('condition', {
    code: {
      system: 'http://hl7.org/fhir/sid/icd-10',
      code: 'F41.1',
      display: 'Generalized anxiety disorder',
    },
    text: 'Synthetic diagnosis text',
    clinicalStatus: 'active',
    verificationStatus: 'confirmed',
    onset: '2023-11-20',
    abatement: '2024-06-30',
    encounterId: ENCOUNTER_ID,
    note: 'Synthetic condition note',
  }),
  record('procedure', {
    status: 'completed',
    code: { system: 'http://snomed.info/sct', code: '75516001', display: 'Psychotherapy' },
    performed: '2024-03-01T09:00:00Z',
    encounterId: ENCOUNTER_ID,
    note: 'Synthetic procedure note',
  }),
  record('medication', {
    status: 'active',
    medication: {
      system: 'http://www.nlm.nih.gov/research/umls/rxnorm',
      code: '312938',
      display: 'Sertraline 50 MG',
    },
    dosage: {
      text: 'one tablet daily',
      route: 'oral',
      dose: { value: 50, unit: 'mg', system: 'http://unitsofmeasure.org', code: 'mg' },
    },
    period: { start: '2024-03-01', end: '2024-09-01' },
    note: 'Synthetic medication note',
  }),
  record('therapy-plan', {
    status: 'active',
    title: 'Synthetic plan',
    description: 'Twelve weekly sessions',
    goals: ['Sleep seven hours', 'Walk daily'],
    period: { start: '2024-03-01', end: '2024-06-01' },
  }),
  record(
    'note',
    {
      title: 'Session note',
      body: 'Synthetic note body with ünïcödé and\nnew lines.',
      date: '2024-03-01T10:00:00.000Z',
      encounterId: ENCOUNTER_ID,
    },
    { sensitivity: 'restricted' },
  ),
  record('document', {
    title: 'Referral letter',
    description: 'Synthetic scanned letter',
    contentType: 'application/pdf',
    date: '2024-02-28T12:00:00Z',
    fileName: 'referral.pdf',
    size: 12345,
    category: 'correspondence',
  }),
];

export const psychotherapyNote = record(
  'note',
  {
    title: 'Process note',
    body: 'Synthetic psychotherapy note body',
    date: '2024-03-01T10:30:00Z',
    encounterId: ENCOUNTER_ID,
  },
  { sensitivity: 'psychotherapy' },
);
