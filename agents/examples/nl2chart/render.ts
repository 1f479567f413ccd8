/**
 * Vega-Lite spec → SVG, headless: compile to Vega, run a View with no renderer, serialise.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { StepError } from '../../runtime/errors';

/**
 * Renders `spec` to an SVG document string.
 * @throws StepError `render-failed` with Vega's message
 */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  let view: vega.View | undefined;
  try {
    const compiled = compile(spec).spec;
    view = new vega.View(vega.parse(compiled), { renderer: 'none' });
    return await view.toSVG();
  } catch (err) {
    throw new StepError('render-failed', `could not render the chart: ${(err as Error).message}`);
  } finally {
    view?.finalize();
  }
}
