export async function importCommand (..._a: any[]): Promise<number> { throw new Error('not yet') }
