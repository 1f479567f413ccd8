import { Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/**
 * Acknowledges cdk-nag findings on `scope` and everything below it, each with the reason it is
 * acceptable. cdk-nag 3 matches finding ids exactly (`AwsSolutions-IAM5[Resource::…]`).
 */
export function acknowledge(scope: IConstruct, reason: string, ...ids: string[]): void {
  if (reason.trim().length < 20) throw new Error(`acknowledging ${ids.join(', ')} needs a real reason`);
  for (const id of ids) Validations.of(scope).acknowledge({ id, reason });
}

/** The finding id cdk-nag reports for the AWS-managed basic Lambda execution policy. */
export const LAMBDA_BASIC_EXECUTION_FINDING = 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]';

/** The finding id cdk-nag reports for a wildcard IAM resource, in its `<AWS::Region>` notation. */
export function wildcardResourceFinding(resource: string): string {
  return `AwsSolutions-IAM5[Resource::${resource}]`;
}
