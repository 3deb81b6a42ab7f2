import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  NAME_GROUPS,
  PSYCHOTHERAPY_PHRASES,
  RESTRICTED_PHRASES,
  THERAPY_ASSESSMENT,
  THERAPY_CONTENT,
  THERAPY_GOALS,
  THERAPY_OPENERS,
  THERAPY_PLAN,
  VISIT_ASSESSMENT,
  VISIT_FINDINGS,
  VISIT_OPENERS,
  VISIT_PLAN,
} from '../demo/vocabulary.ts';
import { everywhere, request } from './injection.testkit.ts';
import { detectInjection } from './injection.ts';

// False positives lock staff out (strikes lead to an address block), so these are as much the
// specification of the signatures as the attacks in injection.test.ts.

describe('detectInjection: clinical and everyday text passes', () => {
  const CLINICAL = [
    "O'Brien",
    "D'Angelo",
    "'t Hart",
    "Mc'Donald",
    'drop-in session',
    'drop in blood pressure',
    'select appropriate dose',
    'Patient selected option 2',
    'union of fracture',
    '1=1 ratio',
    'ratio 1:1',
    'BP 120/80',
    'follow-up in 2/52',
    'C-reactive protein < 5',
    'score >= 10',
    'Temp > 38.5 °C',
    '<5% body fat',
    'mother & father',
    'alcohol: 2-3 units/day; smoking: none',
    'see notes -- no change',
    'wt 70kg; ht 1.75m',
    'script for amoxicillin',
    'prescription script renewed',
    'e-mail: patient@example.org',
    'call back at 06-12345678',
    '**bold**',
    'A&E visit',
    'echo cardiogram',
    'cat scratch fever',
    'rm 12 (room twelve)',
    'ls (left side)',
    "Dr. Smith's note: pt's wife said 'no'",
    'he said "or maybe"',
    'Select * from the menu — patient joked',
    'https://example.org/a/b',
    '2026-11-23',
    'F32.1',
    '/api/v1/patients/3f2a.../notes',
    '/api/v1/patients/3f2a9c1e-7b4d-4e8a-9f00-1c2d3e4f5a6b/notes',
    // More near-misses, each chosen to sit next to one signature.
    'Allergies: penicillin; cat dander; house dust',
    'Chest: rs clear; ls -ve for crackles',
    'CP 3/10; RM 12; MV prolapse noted',
    "Pt said 'no'-- then agreed after discussion",
    "Mother says 'fine' -- looks pale though",
    "Wife reports he is 'more tired' and 'sleeping a lot'",
    "Pt said 'no'; select a GP at next visit",
    'Mood, appetite and sleep (7h) reviewed; sleep(6h) on weekends',
    'CRP <normal, onset=3/7 ago',
    'Meds: paracetamol 1g QDS | ibuprofen 400mg TDS',
    "Prescribed 'Microgynon 30' -- review 3/12",
    'Family hx: father - MI @ 55; mother - T2DM',
    'Re-check `echo` next week; `ECG` booked',
    'Exercises: squats 3x10; curl 10kg x 3; rest 60s',
    'Dx: ?UTI / ?pyelonephritis',
    'HbA1c 48 mmol/mol (<53), eGFR >90',
    '#1 priority: BP control; #2: weight',
    'Phone: +31 (0)6-1234 5678 (mobile) & landline',
    'echo: EF 55%, no regional WMA',
    'Drop foot on the left; union of tibia confirmed on X-ray',
    'Dose: 5 mg/kg/day ÷ 3 doses, max 1 g',
    "Name: José Núñez-O'Brien, née Müller; 佐藤 花子",
    'Temp 37.2; HR 88; BP 118/76; SpO2 98% RA',
    'Hmm... / unsure, will review',
    "Patients' and carers' views were sought",
    'Plan: delete from problem list (resolved)',
    'Benchmark (national average) is 72%',
    'Pain 2 or 3/10, worse at night',
    'Wound 2cm x 1cm; dressing changed; review in 1/52',
    'ID checked & consent obtained; id band on left wrist',
    'https://nhs.example/conditions/asthma?tab=1&lang=en#treatment',
    'Facial expression (flat); affect congruent',
    'C:\\Users\\reception\\Documents\\letter.docx',
  ];

  it.each(CLINICAL)('passes %j in query, body, path and referer', (text) => {
    for (const req of everywhere(text)) {
      expect(detectInjection(req)).toBeUndefined();
    }
  });

  it('passes every phrase and name the demo generator writes', () => {
    const phrases = [
      ...THERAPY_OPENERS,
      ...THERAPY_CONTENT,
      ...THERAPY_ASSESSMENT,
      ...THERAPY_PLAN,
      ...PSYCHOTHERAPY_PHRASES,
      ...VISIT_OPENERS,
      ...VISIT_FINDINGS,
      ...VISIT_ASSESSMENT,
      ...VISIT_PLAN,
      ...RESTRICTED_PHRASES,
      ...Object.values(THERAPY_GOALS).flat(),
      ...NAME_GROUPS.flatMap((g) => [...g.female, ...g.male, ...g.family]),
    ];
    expect(detectInjection(request({ method: 'POST', body: { phrases } }))).toBeUndefined();
  });

  it('passes ordinary browser, proxy and API-client headers', () => {
    const agents = [
      'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
      'Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0',
      'curl/8.4.0',
      'custos-cli/0.1.0 (node 20.11; linux x64)',
    ];
    for (const agent of agents) {
      const headers = {
        'user-agent': agent,
        'x-forwarded-for': '203.0.113.7, 10.0.0.2',
        'content-type': 'multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW',
        accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,image/*,*/*;q=0.8',
        cookie: ['custos_session=abc', '__Host-csrf=def'],
      };
      expect(detectInjection(request({ headers }))).toBeUndefined();
    }
  });

  it('passes random clinical-like text (property)', () => {
    // Words and shorthand from real notes, including every near-miss keyword (select-ish, drop, union,
    // cat, echo, ls, rm, sleep, exec, script …) and names with apostrophes. Adjacent pairs that are
    // never clinical ("union select", "drop table") cannot both be drawn: "select" and "table" are
    // left out, and the explicit lists above cover them.
    const words = `patient pt client reports denies pain chest abdo mild severe BP HR RR SpO2 temp wt ht BMI
      no yes or and with without from to in at on for of the a seen review follow-up drop drop-in union
      selected selects delete update insert order by exec script prescription echo cat ls rs rm cp MV id
      sleep head tail find touch curl onset ongoing normal O'Brien D'Angelo O'Neill pt's wife's Smith's
      A&E GP ECG CRP HbA1c eGFR amoxicillin paracetamol QDS TDS PRN stat mane nocte NAD SOB C/O O/E Hx Dx
      Rx Tx F32.1 J45.9 I10 plan continue stop started benchmark information schema wait delay notes
      mother father wife husband said says fine better worse left right side Müller Núñez Nguyễn °C — …`
      .split(/\s+/)
      .filter((w) => w !== '');
    const numbers = `120/80 2/52 3/12 1:1 38.5 70kg 1.75m 5mg 10mg/kg <5% >38 >=10 <5 06-12345678 2026-11-23
      10:30 #2 ~3 +2 50% 98% 1g (3) 3x10`
      .split(/\s+/)
      .filter((w) => w !== '');
    const decorate = (w: string, wrap: number, punct: number): string => {
      const wrapped = [w, w, w, `'${w}'`, `"${w}"`, `(${w})`, `*${w}*`, `**${w}**`][wrap] ?? w;
      return (
        wrapped + ([',', ';', ':', '.', '...', ' --', ' -', ' &', ' |', ' /', '?', '!', ''][punct] ?? '')
      );
    };
    const token = fc.oneof(
      { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...words), fc.nat(12), fc.nat(20)) },
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...numbers), fc.constant(0), fc.nat(20)) },
    );
    const note = fc
      .array(token, { minLength: 1, maxLength: 40 })
      .map((ts) =>
        ts.map(([w, wrap, punct]) => decorate(w, wrap, punct)).join(fc.sample(fc.constant(' '), 1)[0]),
      );
    fc.assert(
      fc.property(note, fc.constantFrom('query', 'body'), (text, where) => {
        const req =
          where === 'query' ? request({ query: { q: text } }) : request({ body: { note: { text } } });
        expect(detectInjection(req)).toBeUndefined();
      }),
      { numRuns: 500 },
    );
  });
});
