/**
 * The sweeper function's settings, read and validated once at cold start (ConfigError names any
 * missing or malformed variable).
 */
import { loadSettings, type FunctionSettings } from '../lib/settings';

/** Settings of the `sweeper` function. */
export const config: FunctionSettings = loadSettings('sweeper');
