/**
 * `nl2chart`: turns rows and a natural-language intent into a Vega-Lite spec and an SVG.
 *
 * Bids whenever the request wants `chart_svg` or `chart_spec`, even when `rows` is not in the
 * input: the planner joins this step to another agent's step that produces rows. The intent is
 * the `intent` input when there is one, else the task's goal (so the step then consumes rows only).
 */
import { defineAgent, type AgentDefinition } from '../../runtime/define-agent';
import { StepError } from '../../runtime/errors';
import type { JsonValue } from '../../../core/schemas';
import { specFor } from './chart-spec';
import { renderSvg } from './render';

/** The skill this agent offers. */
export const SKILL = 'nl2chart';

/** Artifacts it writes. */
export const PRODUCES = ['chart_spec', 'chart_svg'] as const;

const PRICE_USD = 0.003;
const P95_MS = 150;

/** Builds the nl2chart agent for `id`. */
export function createNl2ChartAgent(id: string): AgentDefinition {
  return defineAgent({
    id,
    resume: {
      skills: [SKILL],
      cost: { usd: PRICE_USD, p95_ms: P95_MS },
      region: 'eu-central-1',
      accredit: ['ISO27001'],
      name: 'Natural language to chart',
      description: 'Chooses a chart for rows from a plain-language intent and renders it to SVG with Vega-Lite.',
      version: '1.0.0',
      maxConcurrent: 4,
      skillDetails: [{ id: SKILL, description: 'Rows + intent → Vega-Lite spec and SVG', tags: ['chart', 'visualisation'] }],
    },
    propose(request) {
      const wanted = request.want.filter((w) => (PRODUCES as readonly string[]).includes(w));
      if (wanted.length === 0) return { decline: true, reason: `wants none of ${PRODUCES.join(', ')}` };
      const { rows, intent } = request.input;
      if (rows !== undefined && (!Array.isArray(rows) || rows.length === 0)) return { decline: true, reason: 'input rows is not a non-empty array' };
      if (intent !== undefined && typeof intent !== 'string') return { decline: true, reason: 'input intent is not a string' };
      const consumes = intent === undefined ? ['rows'] : ['rows', 'intent'];
      return {
        steps: [{ id: 'chart', skill: SKILL, consumes, produces: [...PRODUCES], estUsd: PRICE_USD, estMs: P95_MS }],
        note: intent === undefined ? 'charts the rows as the goal describes' : undefined,
      };
    },
    async execute(assignment, ctx) {
      const intentInput = assignment.inputs.intent;
      if (intentInput !== undefined && typeof intentInput !== 'string') throw new StepError('invalid-input', 'input intent must be a string');
      const intent = intentInput ?? assignment.goal;
      const { spec, plan } = specFor(intent, assignment.inputs.rows);
      ctx.progress(0.3, `${plan.mark} chart of ${plan.aggregate === undefined ? '' : `${plan.aggregate} of `}${plan.measure ?? 'rows'} by ${plan.dimension}`);
      const svg = await renderSvg(spec);
      ctx.progress(1, `${svg.length} bytes of SVG`);
      return { chart_spec: JSON.parse(JSON.stringify(spec)) as JsonValue, chart_svg: svg };
    },
  });
}
