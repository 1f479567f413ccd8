/**
 * The progress function's settings, read and validated once at cold start (ConfigError names any
 * missing or malformed variable).
 */
import { loadSettings, type FunctionSettings } from '../lib/settings';

/** Settings of the `progress` function. */
export const config: FunctionSettings = loadSettings('progress');
