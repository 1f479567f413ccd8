// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Modules that must never be reachable from core/: it is pure and shared by Lambda, agents and the local stack. */
const forbiddenInCore = [
  { group: ['@aws-sdk/*', 'aws-cdk-lib', 'aws-cdk-lib/*', 'constructs', 'aws-iot-device-sdk-v2', 'aws-iot-device-sdk-v2/*', 'aws-crt', 'aws-crt/*', 'mqtt', 'cdk-nag', '@aws-lambda-powertools/*'], message: 'core/ is pure: no AWS SDK, CDK, CRT or MQTT client.' },
  { group: ['node:fs', 'fs', 'node:child_process', 'child_process', 'node:net', 'net', 'node:http', 'http', 'node:https', 'https'], message: 'core/ does no I/O: put it behind a port.' },
  { group: ['../functions/*', '../infra/*', '../agents/*', '../local/*', '../cli/*'], message: 'core/ depends on nothing outside core/.' },
];

export default tseslint.config(
  { ignores: ['node_modules/**', 'cdk.out/**', '.porchlight/**', 'coverage/**', '**/*.js', '**/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/ban-ts-comment': ['error', { 'ts-ignore': true, 'ts-expect-error': 'allow-with-description' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
    },
  },
  {
    files: ['core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: forbiddenInCore }],
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'env', message: 'core/ takes configuration as arguments, never from process.env.' },
        { object: 'Date', property: 'now', message: 'core/ reads time from the injected Clock port.' },
        { object: 'Math', property: 'random', message: 'core/ takes randomness from the injected IdGenerator port.' },
      ],
      'no-restricted-syntax': [
        'error',
        { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'core/ reads time from the injected Clock port.' },
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/require-await': 'off',
    },
  },
);
