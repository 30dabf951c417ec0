"""Plans kept per problem: the one cache the algorithms' plan classes share.

A plan (chunking, tiling, thread count, workspace) depends on the problem and operation, the
workspace limit and the thread budget of the call, and nothing else but the algorithm's own
switches. Rebuilding it took 2-40 us of Python a call (Winograd's 2-D plan with its plane lists
the most), which a training loop's 50-150 us layers felt. ``per_problem(build, switches)`` gives
``plan_of(spec, op)``: ``build(spec, op)`` made once per (spec, op, limit, threads,
``switches()``); `switches` returns what else the plan reads (an environment variable, a module
threshold that tests move), so a changed one plans anew. Plans are read-only once built.
"""
import functools

from .. import _config

SIZE = 256      # plans kept per algorithm


def per_problem(build, switches=lambda: ()):
    @functools.lru_cache(maxsize=SIZE)
    def cached(spec, op, limit, threads, switched):
        return build(spec, op)

    def plan_of(spec, op):
        return cached(spec, op, _config.get_workspace_limit(), _config.get_num_threads(),
                      switches())
    plan_of.cache_clear = cached.cache_clear
    return plan_of
