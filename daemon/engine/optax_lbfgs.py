"""L-BFGS that stays on the device (JAX): optax's L-BFGS with its zoom line search, pixels kept
in 0..255 by projection, several iterations per compiled call. Between calls the host reports
progress, honours stop requests and takes intermediate saves."""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

import numpy as np

from daemon.engine.optimize import OptimizeOutcome, StepCallback

log = logging.getLogger(__name__)

# Iterations per compiled call at most: the host sees progress and stop requests this often.
ITERATIONS_PER_CALL = 10
# As many correction pairs as the scipy path (maxcor) keeps.
MEMORY = 20
MAX_LINESEARCH_STEPS = 20

# (x, targets, weights, real_hw) -> (total, (content, style, tv)), traceable by JAX
DeviceLoss = Callable[..., tuple]
# iterations done at this scale -> iterations until the host must see the image again
NextStop = Callable[[int], int]


class DeviceLBFGS:
    """One compiled optimisation chunk per image shape; `traces` counts how often it was traced."""

    def __init__(self, loss_fn: DeviceLoss) -> None:
        import jax
        import optax

        self.traces = 0
        self._loss_fn = loss_fn
        self._optimizer = optax.lbfgs(
            memory_size=MEMORY,
            linesearch=optax.scale_by_zoom_linesearch(max_linesearch_steps=MAX_LINESEARCH_STEPS,
                                                      initial_guess_strategy="one"),
        )
        self._chunk = jax.jit(self._run_chunk)

    def run(self, x0: np.ndarray, targets: Sequence, weights: Sequence, real_hw: tuple[int, int],
            iterations: int, on_step: StepCallback, next_stop: NextStop) -> OptimizeOutcome:
        """Minimise from x0 (1, H, W, 3 padded) for `iterations`, calling on_step after each one."""
        import jax.numpy as jnp

        start = time.perf_counter()
        x = jnp.asarray(x0, dtype=jnp.float32)
        state = _strong(self._optimizer.init(x))
        hw = jnp.asarray(real_hw, dtype=jnp.int32)
        targets = [jnp.asarray(t) for t in targets]  # copied to the device once, not per call
        done = evaluations = 0
        while done < iterations:
            n = max(1, min(ITERATIONS_PER_CALL, iterations - done, next_stop(done)))
            x, state, totals, steps, parts = self._chunk(x, state, targets, weights, hw, np.int32(n))
            totals = np.asarray(totals)
            parts = tuple(float(p) for p in parts)
            evaluations += int(steps)
            image = _Lazy(x)
            # The total is known for every iteration (the line search's value); the loss terms only
            # at the end of a call, which falls on every logged iteration (see next_stop).
            for i in range(n):
                done += 1
                if not on_step(done, float(totals[i]), parts, image):
                    return OptimizeOutcome(image(), done, evaluations, True, time.perf_counter() - start)
        return OptimizeOutcome(np.asarray(x), done, evaluations, False, time.perf_counter() - start)

    def _run_chunk(self, x, state, targets, weights, hw, n):
        import jax
        import jax.numpy as jnp
        import optax

        self.traces += 1  # runs only while JAX traces, i.e. once per compilation

        def value_fn(z):
            return self._loss_fn(project(z), targets, weights, hw)[0]

        value_and_grad = optax.value_and_grad_from_state(value_fn)

        def body(i, carry):
            x, state, totals, steps = carry
            value, grad = value_and_grad(x, state=state)
            updates, state = self._optimizer.update(grad, state, x, value=value, grad=grad, value_fn=value_fn)
            x = project(optax.apply_updates(x, updates))
            totals = totals.at[i].set(optax.tree.get(state, "value"))
            steps = steps + optax.tree.get(state, "num_linesearch_steps")
            return x, state, totals, steps

        carry = (x, state, jnp.zeros(ITERATIONS_PER_CALL, jnp.float32), jnp.int32(0))
        x, state, totals, steps = jax.lax.fori_loop(0, n, body, carry)
        _, parts = self._loss_fn(x, targets, weights, hw)
        return x, _strong(state), totals, steps, parts


def project(x):
    """Clip to 0..255 with gradient 1 inside the box (bounds included) and 0 outside it."""
    import jax.numpy as jnp

    inside = (x >= 0.0) & (x <= 255.0)
    return jnp.where(inside, x, jnp.clip(x, 0.0, 255.0))


def _strong(state):
    """The state with no weakly typed leaves: optax's fresh state has some and the chunk's returned
    state would not, and JAX compiles again when only weak types differ."""
    import jax

    return jax.tree.map(lambda leaf: leaf.astype(leaf.dtype), state)


class _Lazy:
    """The chunk's final image, copied to the host only if someone asks for it."""

    def __init__(self, x) -> None:
        self._x = x
        self._host: np.ndarray | None = None

    def __call__(self) -> np.ndarray:
        if self._host is None:
            self._host = np.asarray(self._x)
        return self._host
