/**
 * Typed access to the environment. Every function validates its variables once, at module scope,
 * so a misconfigured deployment fails at cold start with a ConfigError naming the variable,
 * instead of half-way through handling a message.
 */
import { ConfigError } from '../../core/errors';

/** Where variables come from: `process.env` in Lambda, a plain object in tests. */
export type EnvSource = Readonly<Record<string, string | undefined>>;

/** Options for {@link Env.int}. */
export interface IntOptions {
  readonly min?: number;
  readonly max?: number;
}

/** Reads and checks environment variables; every failure is a ConfigError that names the variable. */
export class Env {
  constructor(private readonly source: EnvSource = process.env) {}

  /** A required, non-blank string. */
  string(name: string): string {
    const value = this.optionalString(name);
    if (value === undefined) throw new ConfigError(`environment variable ${name} is required but not set`);
    return value;
  }

  /** A string, or undefined when unset or blank. */
  optionalString(name: string): string | undefined {
    const value = this.source[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  }

  /** An http(s) URL, or undefined when unset. */
  optionalUrl(name: string): string | undefined {
    const value = this.optionalString(name);
    if (value === undefined) return undefined;
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw new ConfigError(`environment variable ${name} must be an http(s) URL; got ${JSON.stringify(value)}`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new ConfigError(`environment variable ${name} must be an http(s) URL; got ${JSON.stringify(value)}`);
    }
    return value;
  }

  /** A required http(s) URL. */
  url(name: string): string {
    const value = this.optionalUrl(name);
    if (value === undefined) throw new ConfigError(`environment variable ${name} is required but not set`);
    return value;
  }

  /** A whole number within bounds, or `fallback` when unset. */
  int(name: string, fallback: number, options: IntOptions = {}): number {
    const raw = this.optionalString(name);
    if (raw === undefined) return fallback;
    if (!/^-?\d+$/.test(raw)) throw new ConfigError(`environment variable ${name} must be a whole number; got ${JSON.stringify(raw)}`);
    const value = Number(raw);
    const min = options.min ?? Number.MIN_SAFE_INTEGER;
    const max = options.max ?? Number.MAX_SAFE_INTEGER;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw new ConfigError(`environment variable ${name} must be between ${min} and ${max}; got ${raw}`);
    }
    return value;
  }
}
