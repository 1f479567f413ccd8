/**
 * Runs a chaos worker as a process: the usual PORCHLIGHT_HOST, PORCHLIGHT_PORT, PORCHLIGHT_CERT,
 * PORCHLIGHT_KEY, PORCHLIGHT_CA and PORCHLIGHT_AGENT_ID, plus
 *   PORCHLIGHT_CHAOS_SKILL   chaos-a | chaos-b
 *   PORCHLIGHT_EFFECT_LEDGER the effect ledger file (appended to)
 */
import { ConfigError } from '../../../core/errors';
import { EXIT, runAgentProcess } from '../../runtime/run-process';
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
  runAgentProcess((agentId) => createChaosWorker(agentId, { skill, ledgerPath })).catch((err: unknown) => {
    process.stderr.write(`chaos-worker: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(EXIT.failure);
  });
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`chaos-worker: ${err.message}\n`);
  process.exitCode = EXIT.config;
}
