// A node's drifting resources, read without starting any process: the machine's busy
// fraction from the kernel's CPU times (os.cpus()), between two readings.
import t from 'tap'
import { cpuTimes, busyBetween, measureDynamic } from '../daemon/resources.ts'

const core = (user: number, idle: number): { times: { user: number, nice: number, sys: number, idle: number, irq: number } } => ({ times: { user, nice: 0, sys: 0, idle, irq: 0 } })

t.test('the busy fraction is the busy share of the CPU time that passed between two readings, all cores together', async t => {
  const before = cpuTimes([core(1000, 9000), core(500, 9500)])
  const after = cpuTimes([core(1900, 9100), core(500, 10_500)])
  // 900 busy of 2000 ms passed
  t.equal(busyBetween(before, after), 0.45)
  t.equal(busyBetween(before, before), undefined, 'no time passed: no reading')
  t.equal(busyBetween(cpuTimes([core(0, 0)]), cpuTimes([core(10, 0)])), 1)
})

t.test('measured on this machine: while this test spins one core, the busy fraction is at least that core\'s share', async t => {
  const cores = (await import('node:os')).availableParallelism()
  await measureDynamic(process.cwd())
  const until = Date.now() + 300
  while (Date.now() < until) Math.sqrt(Math.random())
  const d = await measureDynamic(process.cwd())
  // one core of `cores` busy the whole time (others may be busy too, never less): a
  // reading that is not taken between the two calls (the load average, a constant) misses it
  t.ok(d.load >= 0.8 / cores && d.load <= 1, `busy ${d.load} of the machine, one core of ${cores} spun`)
  t.ok(d.ram > 0 && d.disk > 0, 'RAM and disk free, MiB')
})
