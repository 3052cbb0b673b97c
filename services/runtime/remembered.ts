// A pure function's answers kept for the inputs seen most recently, up to a limit: the first one
// remembered is the first forgotten, so hostile or endless inputs cost bounded memory.
export function remembered<K, V>(limit: number, compute: (key: K) => V): (key: K) => V {
  const answers = new Map<K, V>()
  return (key: K): V => {
    if (answers.has(key)) return answers.get(key)!
    const answer = compute(key)
    if (answers.size >= limit) answers.delete(answers.keys().next().value!)
    answers.set(key, answer)
    return answer
  }
}
