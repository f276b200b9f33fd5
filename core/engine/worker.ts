/** Piscina worker: runs one map task (see steps.ts). */
import { runMapTaskSafely, type MapTask } from './steps.ts';

export default function (task: MapTask) {
  return runMapTaskSafely(task);
}
