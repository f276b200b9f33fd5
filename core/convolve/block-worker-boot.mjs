// Worker entry: TypeScript runs through tsx (no build step), as in cli/bin.js.
import { register } from 'tsx/esm/api';
register();
await import('./block-worker.ts');
