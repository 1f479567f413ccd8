/**
 * `timer`: the SQS timer queue (batch, ReportBatchItemFailures) → Orchestrator.onTimer. A message
 * not yet due (SQS delays at most 15 minutes) is sent on again; a malformed one is dropped with a
 * log line; a record that failed for a reason a retry may fix is reported back for redelivery.
 */
import type { SQSBatchItemFailure, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { handleTimerRecord } from '../lib/timer-records';
import { createRuntime } from '../lib/wiring';
import { config } from './config';

const runtime = createRuntime(config);

/** Handles each record in order; returns the ids of those to redeliver. */
export async function handler(event: SQSEvent): Promise<SQSBatchResponse> {
  const batchItemFailures: SQSBatchItemFailure[] = [];
  try {
    for (const record of event.Records) {
      try {
        await handleTimerRecord(runtime, record);
      } catch {
        batchItemFailures.push({ itemIdentifier: record.messageId });
      }
    }
  } finally {
    runtime.obs.metrics.publishStoredMetrics();
  }
  return { batchItemFailures };
}
