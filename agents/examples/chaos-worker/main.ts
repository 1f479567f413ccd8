/**
 * Runs a chaos worker as a process: the usual PORCHLIGHT_HOST, PORCHLIGHT_PORT, PORCHLIGHT_CERT,
 * PORCHLIGHT_KEY, PORCHLIGHT_CA and PORCHLIGHT_AGENT_ID, plus
 *   PORCHLIGHT_CHAOS_SKILL   chaos-a | chaos-b
 *   PORCHLIGHT_EFFECT_LEDGER the effect ledger file (appended to)
 * and optionally PORCHLIGHT_JOURNAL. Without it the assignment journal lives next to the ledger,
 * in `journals/{agentId}.jsonl`, so a run's journals stay in the run's state directory and a
 * restarted worker finds its predecessor's.
 */
import { dirname, join } from 'node:path';
import { ConfigError } from '../../../core/errors';
import { EXIT, JOURNAL_ENV, runAgentProcess } from '../../runtime/run-process';
import { CHAOS_SKILLS, createChaosWorker, type ChaosSkill } from './agent';

function settings(env: NodeJS.ProcessEnv): { skill: ChaosSkill; ledgerPath: string } {
  const skill = (env.PORCHLIGHT_CHAOS_SKILL ?? '').trim();
  if (!Object.prototype.hasOwnProperty.call(CHAOS_SKILLS, skill)) {
    throw new ConfigError(`PORCHLIGHT_CHAOS_SKILL=${skill} must be one of ${Object.keys(CHAOS_SKILLS).join(', ')}`);
  }
  const ledgerPath = (env.PORCHLIGHT_EFFECT_LEDGER ?? '').trim();
  if (ledgerPath === '') throw new ConfigError('missing environment variable: PORCHLIGHT_EFFECT_LEDGER');
  return { skill: skill as ChaosSkill, ledgerPath };
}

try {
  const { skill, ledgerPath } = settings(process.env);
  const agentId = (process.env.PORCHLIGHT_AGENT_ID ?? '').trim();
  const env = (process.env[JOURNAL_ENV] ?? '').trim() === '' && agentId !== ''
    ? { ...process.env, [JOURNAL_ENV]: join(dirname(ledgerPath), 'journals', `${agentId}.jsonl`) }
    : process.env;
  runAgentProcess((id) => createChaosWorker(id, { skill, ledgerPath }), {}, env).catch((err: unknown) => {
    process.stderr.write(`chaos-worker: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(EXIT.failure);
  });
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`chaos-worker: ${err.message}\n`);
  process.exitCode = EXIT.config;
}
