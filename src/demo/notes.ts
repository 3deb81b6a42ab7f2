import type { Sensitivity } from '../chart/model.ts';
import { isoDateTime, MINUTE_MS, type PatientContext, type PlannedEncounter } from './context.ts';
import type { Random } from './random.ts';
import {
  PSYCHOTHERAPY_NOTE_TITLE,
  PSYCHOTHERAPY_PHRASES,
  RESTRICTED_NOTE_TITLE,
  RESTRICTED_PHRASES,
  THERAPY_ASSESSMENT,
  THERAPY_CONTENT,
  THERAPY_NOTE_TITLES,
  THERAPY_OPENERS,
  THERAPY_OPENERS_IN_PERSON,
  THERAPY_OPENERS_VIRTUAL,
  THERAPY_PLAN,
  VISIT_ASSESSMENT,
  VISIT_FINDINGS,
  VISIT_NOTE_TITLES,
  VISIT_OPENERS,
  VISIT_PLAN,
} from './vocabulary.ts';

/**
 * 1-4 notes per patient, each written after one of their encounters by that encounter's clinician.
 * Most are `normal`; about one in ten is `restricted`; about one therapy patient in five has one
 * `psychotherapy` (process) note, kept apart from the rest of the record.
 */
export function writeNotes(ctx: PatientContext): void {
  const { rng, encounters } = ctx;
  const count = Math.min(rng.int(1, 4), encounters.length);
  const chosen = rng.sample(encounters, count).sort((a, b) => a.start - b.start);
  const sessions = chosen.filter((e) => e.type === 'therapy-session');
  const psychotherapy =
    ctx.therapy && sessions.length > 0 && rng.chance(0.2) ? rng.pick(sessions) : undefined;
  for (const enc of chosen) {
    const sensitivity: Sensitivity =
      enc === psychotherapy ? 'psychotherapy' : rng.chance(0.1) ? 'restricted' : 'normal';
    const { title, body } = compose(ctx, enc, sensitivity);
    ctx.add(
      'note',
      { title, body, date: isoDateTime(enc.end + rng.int(5, 90) * MINUTE_MS) },
      { sensitivity, authorId: enc.clinicianId, encounterRef: enc.ref },
    );
  }
}

function compose(
  ctx: PatientContext,
  enc: PlannedEncounter,
  sensitivity: Sensitivity,
): { title: string; body: string } {
  const { rng } = ctx;
  const session = enc.type === 'therapy-session';
  const condition = ctx.conditions.length > 0 ? rng.pick(ctx.conditions).display : 'general health';
  const fill = (phrase: string): string => fillPhrase(phrase, session ? 'Client' : 'Patient', condition);
  if (sensitivity === 'psychotherapy') {
    return {
      title: PSYCHOTHERAPY_NOTE_TITLE,
      body: pickSentences(rng, PSYCHOTHERAPY_PHRASES, 3).map(fill).join(' '),
    };
  }
  const openers = rng.chance(0.5)
    ? THERAPY_OPENERS
    : enc.virtual
      ? THERAPY_OPENERS_VIRTUAL
      : THERAPY_OPENERS_IN_PERSON;
  const parts = session
    ? [
        rng.pick(openers),
        ...pickSentences(rng, THERAPY_CONTENT, rng.int(1, 2)),
        rng.pick(THERAPY_ASSESSMENT),
        rng.pick(THERAPY_PLAN),
      ]
    : [rng.pick(VISIT_OPENERS), rng.pick(VISIT_FINDINGS), rng.pick(VISIT_ASSESSMENT), rng.pick(VISIT_PLAN)];
  if (sensitivity === 'restricted') {
    parts.splice(parts.length - 1, 0, rng.pick(RESTRICTED_PHRASES));
  }
  const intake = enc === ctx.encounters[0] && session;
  const title =
    sensitivity === 'restricted'
      ? RESTRICTED_NOTE_TITLE
      : intake
        ? 'Intake assessment'
        : rng.pick(session ? THERAPY_NOTE_TITLES : VISIT_NOTE_TITLES);
  return { title, body: parts.map(fill).join(' ') };
}

function pickSentences(rng: Random, phrases: readonly string[], n: number): string[] {
  return rng.sample(phrases, n);
}

const filled = new Map<string, Map<string, Map<string, string>>>();

/** Replaces `{Client}`, `{client}` ("the client"), `{Condition}` and `{condition}` in a phrase. */
export function fillPhrase(phrase: string, client: string, condition: string): string {
  if (!phrase.includes('{')) {
    return phrase;
  }
  // Phrases, clients and conditions come from short fixed lists, so the results are cached.
  let byCondition = filled.get(client);
  if (byCondition === undefined) {
    byCondition = new Map();
    filled.set(client, byCondition);
  }
  let cache = byCondition.get(condition);
  if (cache === undefined) {
    cache = new Map();
    byCondition.set(condition, cache);
  }
  let out = cache.get(phrase);
  if (out === undefined) {
    out = substitute(phrase, client, condition);
    cache.set(phrase, out);
  }
  return out;
}

function substitute(phrase: string, client: string, condition: string): string {
  const lower = condition.charAt(0).toLowerCase() + condition.slice(1);
  return phrase
    .replaceAll('{Client}', client)
    .replaceAll('{client}', `the ${client.toLowerCase()}`)
    .replaceAll('{Condition}', condition)
    .replaceAll('{condition}', lower);
}
