/**
 * Runs a market bidder as a process: the usual PORCHLIGHT_HOST, PORCHLIGHT_PORT,
 * PORCHLIGHT_CERT, PORCHLIGHT_KEY, PORCHLIGHT_CA and PORCHLIGHT_AGENT_ID, plus
 *   PORCHLIGHT_MARKET_CLAIM_FACTOR  what it claims, as a multiple of its real figures (default 1)
 *   PORCHLIGHT_MARKET_REAL_USD      real cost of one step, USD (default 0.01)
 *   PORCHLIGHT_MARKET_REAL_MS       real duration of one step, ms (default 200)
 */
import { ConfigError } from '../../../core/errors';
import { EXIT, runAgentProcess } from '../../runtime/run-process';
import { createMarketBidder } from './agent';

function positive(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = (env[name] ?? '').trim();
  if (raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new ConfigError(`${name}=${raw} must be a positive number`);
  return value;
}

try {
  const env = process.env;
  const options = {
    claimFactor: positive(env, 'PORCHLIGHT_MARKET_CLAIM_FACTOR', 1),
    realUsd: positive(env, 'PORCHLIGHT_MARKET_REAL_USD', 0.01),
    realMs: positive(env, 'PORCHLIGHT_MARKET_REAL_MS', 200),
  };
  runAgentProcess((agentId) => createMarketBidder(agentId, options)).catch((err: unknown) => {
    process.stderr.write(`market-bidder: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(EXIT.failure);
  });
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`market-bidder: ${err.message}\n`);
  process.exitCode = EXIT.config;
}
