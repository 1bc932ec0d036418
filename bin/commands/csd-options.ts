// condor_submit_dag's options that `bgrid submit FILE.dag` takes (lower case; true: takes a value).
// bin/cli.ts takes them out of the command line before commander reads it; submit-dagman.ts
// applies them.
export const CSD_OPTIONS: ReadonlyMap<string, boolean> = new Map([
  ['-verbose', false], ['-force', false], ['-f', false], ['-no_submit', false], ['-allowversionmismatch', false], ['-update_submit', false],
  ['-import_env', false], ['-usedagdir', false], ['-no_recurse', false], ['-do_recurse', false], ['-allowlogerror', false],
  ['-dont_use_default_node_log', false], ['-dorecov', false], ['-suppress_notification', false], ['-dumprescue', false],
  ['-notification', true], ['-outfile_dir', true], ['-autorescue', true], ['-dorescuefrom', true], ['-maxjobs', true], ['-maxidle', true],
  ['-maxpre', true], ['-maxpost', true], ['-config', true], ['-batch-name', true], ['-debug', true], ['-priority', true]
])

/**
 * Take condor_submit_dag's single-dash options out of `bgrid submit`'s arguments (commander
 * would read -verbose as -v -e -r...). An option bgrid does not know keeps the word after
 * it when that word is no file name, so that submit-dagman.ts can name the option.
 */
export function takeCsdOptions (args: string[]): { kept: string[], csd: string[] } {
  const kept: string[] = []
  const csd: string[] = []
  for (let i = 0; i < args.length; i++) {
    const a = args[i]
    if (!/^-[A-Za-z][A-Za-z_-]*$/.test(a)) { kept.push(a); continue }
    csd.push(a)
    const known = CSD_OPTIONS.get(a.toLowerCase())
    const next = args[i + 1]
    if (next === undefined) continue
    if (known === true || (known === undefined && !next.startsWith('-') && !/\.(dag|json)$|\.rescue\d{3}$/i.test(next))) csd.push(args[++i])
  }
  return { kept, csd }
}
