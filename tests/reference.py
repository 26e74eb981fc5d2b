"""NumPy float64 transcriptions of each optimizer's algorithm, written from the papers.

Each function takes the initial parameters ``theta`` and a sequence of gradients ``grads`` (one
array per step, independent of the parameters, as the tests feed them) and returns the
trajectory: an array of shape ``(len(grads) + 1, *theta.shape)`` whose row t holds θ_t.
``learning_rate`` is a float or a function of the step t = 1, 2, … (for schedules).
``weight_decay`` applies decoupled decay θ ← θ − lr·wd·θ before the update (Loshchilov & Hutter;
PyTorch's AdamW), which is how the Keras base class applies it for every optimizer.

These are deliberately plain loops over the papers' pseudo-code, sharing nothing with the
package's code.
"""

import numpy as np


def _lr(learning_rate, t):
    return learning_rate(t) if callable(learning_rate) else learning_rate


def _steps(grads, mask):
    """(t, g_t) for the steps this variable gets a gradient at: t counts every step (global)."""
    if mask is None:
        mask = np.ones(len(grads), bool)
    assert len(mask) == len(grads)
    return [(t, g) for t, (g, given) in enumerate(zip(grads, mask), start=1) if given]


def _run(theta, grads, learning_rate, weight_decay, step, mask=None):
    """Shared driver: θ_t = step(θ_{t-1} after decay, g_t, lr_t, t); θ_t = θ_{t-1} (no decay,
    no state change) at a step where ``mask`` (one bool per step) is False."""
    theta = np.asarray(theta, np.float64).copy()
    out = [theta.copy()]
    taken = dict(_steps(grads, mask))
    for t in range(1, len(grads) + 1):
        if t in taken:
            g = np.asarray(taken[t], np.float64)
            lr = _lr(learning_rate, t)
            if weight_decay:
                theta = theta - lr * weight_decay * theta
            theta = step(theta, g, lr, t)
        out.append(theta.copy())
    return np.stack(out)


def masked(reference, thetas, grads, mask, **hyper):
    """Several variables under one optimizer, some skipping steps: one trajectory per variable.

    ``thetas``: the initial value of each variable; ``grads``: per variable, its gradients, one
    per step (any value where it gets none); ``mask``: bool array (steps, variables), whether
    that variable gets a gradient at that step. Keras' convention: t counts steps
    (`apply_gradients` calls), a variable without a gradient is untouched (no decay either),
    and its next update uses the global t. Every step gives at least one variable a gradient
    (Keras refuses a call with none).
    """
    mask = np.asarray(mask, bool)
    assert mask.shape == (len(grads[0]), len(thetas)) and mask.any(axis=1).all()
    return [
        reference(theta, g, mask=mask[:, j], **hyper)
        for j, (theta, g) in enumerate(zip(thetas, grads))
    ]


def adam(
    theta,
    grads,
    learning_rate=0.001,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-8,
    weight_decay=0,
    mask=None,
):
    """Kingma & Ba 2015, Algorithm 1 (the seed's pseudo-code)."""
    m = np.zeros_like(theta, np.float64)
    v = np.zeros_like(theta, np.float64)

    def step(theta, g, lr, t):
        nonlocal m, v
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        m_hat = m / (1 - beta_1**t)
        v_hat = v / (1 - beta_2**t)
        return theta - lr * m_hat / (np.sqrt(v_hat) + epsilon)

    return _run(theta, grads, learning_rate, weight_decay, step, mask)


def amsgrad(
    theta,
    grads,
    learning_rate=0.001,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-8,
    bias_correction=False,
    weight_decay=0,
    mask=None,
):
    """Reddi et al. 2018, Algorithm 2 / the seed's eq. (1); bias_correction: PyTorch's amsgrad."""
    m = np.zeros_like(theta, np.float64)
    v = np.zeros_like(theta, np.float64)
    v_hat = np.zeros_like(theta, np.float64)

    def step(theta, g, lr, t):
        nonlocal m, v, v_hat
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        v_hat = np.maximum(v_hat, v)
        if bias_correction:
            return theta - lr * (m / (1 - beta_1**t)) / (
                np.sqrt(v_hat / (1 - beta_2**t)) + epsilon
            )
        return theta - lr * m / (np.sqrt(v_hat) + epsilon)

    return _run(theta, grads, learning_rate, weight_decay, step, mask)


def rmsprop(
    theta,
    grads,
    learning_rate=0.001,
    rho=0.9,
    epsilon=1e-8,
    momentum=0.0,
    centered=False,
    weight_decay=0,
    mask=None,
):
    """Tieleman & Hinton 2012 (the seed's form, ε outside the root); Graves 2013 centering;
    PyTorch's momentum buffer."""
    square_avg = np.zeros_like(theta, np.float64)
    grad_avg = np.zeros_like(theta, np.float64)
    buf = np.zeros_like(theta, np.float64)

    def step(theta, g, lr, t):
        nonlocal square_avg, grad_avg, buf
        square_avg = rho * square_avg + (1 - rho) * g * g
        if centered:
            grad_avg = rho * grad_avg + (1 - rho) * g
            denom = np.sqrt(square_avg - grad_avg * grad_avg) + epsilon
        else:
            denom = np.sqrt(square_avg) + epsilon
        if momentum > 0:
            buf = momentum * buf + g / denom
            return theta - lr * buf
        return theta - lr * g / denom

    return _run(theta, grads, learning_rate, weight_decay, step, mask)


def adagrad(
    theta,
    grads,
    learning_rate=0.01,
    initial_accumulator_value=0.0,
    epsilon=1e-10,
    weight_decay=0,
    mask=None,
):
    """Duchi et al. 2011, diagonal Adagrad as the seed writes it."""
    G = np.full_like(theta, initial_accumulator_value, np.float64)

    def step(theta, g, lr, t):
        nonlocal G
        G = G + g * g
        return theta - lr * g / (np.sqrt(G) + epsilon)

    return _run(theta, grads, learning_rate, weight_decay, step, mask)


def adadelta(theta, grads, learning_rate=1.0, rho=0.95, epsilon=1e-6, weight_decay=0, mask=None):
    """Zeiler 2012, Algorithm 1 (with a learning rate multiplying Δθ)."""
    Eg2 = np.zeros_like(theta, np.float64)
    Edx2 = np.zeros_like(theta, np.float64)

    def step(theta, g, lr, t):
        nonlocal Eg2, Edx2
        Eg2 = rho * Eg2 + (1 - rho) * g * g
        dx = np.sqrt(Edx2 + epsilon) / np.sqrt(Eg2 + epsilon) * g
        Edx2 = rho * Edx2 + (1 - rho) * dx * dx
        return theta - lr * dx

    return _run(theta, grads, learning_rate, weight_decay, step, mask)


def adamax(
    theta,
    grads,
    learning_rate=0.002,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-8,
    weight_decay=0,
    mask=None,
):
    """Kingma & Ba 2015, §7.1 Algorithm 2, ε inside the max (PyTorch)."""
    m = np.zeros_like(theta, np.float64)
    u = np.zeros_like(theta, np.float64)

    def step(theta, g, lr, t):
        nonlocal m, u
        m = beta_1 * m + (1 - beta_1) * g
        u = np.maximum(beta_2 * u, np.abs(g) + epsilon)
        return theta - (lr / (1 - beta_1**t)) * m / u

    return _run(theta, grads, learning_rate, weight_decay, step, mask)


def sgd(theta, grads, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=0, mask=None):
    """Plain SGD; heavy-ball (Polyak 1964) and Nesterov (Sutskever et al. 2013) momentum."""
    b = np.zeros_like(theta, np.float64)

    def step(theta, g, lr, t):
        nonlocal b
        if momentum == 0:
            return theta - lr * g
        b = momentum * b + g
        return theta - lr * (g + momentum * b if nesterov else b)

    return _run(theta, grads, learning_rate, weight_decay, step, mask)


# -- issue 5: more variants ------------------------------------------------------------------


def adamw(
    theta,
    grads,
    learning_rate=0.001,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-8,
    weight_decay=0.01,
    mask=None,
):
    """Loshchilov & Hutter 2019, Algorithm 2 (AdamW), with the decay multiplied by the learning
    rate as PyTorch's AdamW: θ_t = θ_{t-1} − lr·(m̂/(√v̂ + ε) + λ·θ_{t-1})."""
    theta = np.asarray(theta, np.float64).copy()
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    out = [theta.copy()]
    taken = dict(_steps(grads, mask))
    for t in range(1, len(grads) + 1):
        if t not in taken:
            out.append(theta.copy())
            continue
        g = np.asarray(taken[t], np.float64)
        lr = _lr(learning_rate, t)
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        m_hat = m / (1 - beta_1**t)
        v_hat = v / (1 - beta_2**t)
        theta = theta - lr * (m_hat / (np.sqrt(v_hat) + epsilon) + weight_decay * theta)
        out.append(theta.copy())
    return np.stack(out)


def nadam(
    theta,
    grads,
    learning_rate=0.002,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-8,
    momentum_decay=0.004,
    weight_decay=0,
    mask=None,
):
    """Dozat 2016, Algorithm 2 with the momentum schedule μ_t = β1(1 − 0.5·0.96^(tψ)) (§3), in
    the form of PyTorch's NAdam (the product of the μ's kept, the step uses μ_t and μ_{t+1}).
    Π_t = μ_1·…·μ_t over every step t (global, as Keras' single product), also those this
    variable skips."""
    m = np.zeros_like(theta, np.float64)
    v = np.zeros_like(theta, np.float64)

    def mu(t):
        return beta_1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))

    def step(theta, g, lr, t):
        nonlocal m, v
        mu_product = np.prod([mu(s) for s in range(1, t + 1)])
        mu_product_next = mu_product * mu(t + 1)
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        v_hat = v / (1 - beta_2**t)
        m_bar = (1 - mu(t)) / (1 - mu_product) * g + mu(t + 1) / (1 - mu_product_next) * m
        return theta - lr * m_bar / (np.sqrt(v_hat) + epsilon)

    return _run(theta, grads, learning_rate, weight_decay, step, mask)


def radam(
    theta,
    grads,
    learning_rate=0.001,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-8,
    weight_decay=0,
    mask=None,
):
    """Liu et al. 2020, Algorithm 2; ε added to √v_t as in PyTorch's RAdam and the authors' code;
    the SGD-with-momentum step (bias-corrected m) while ρ_t ≤ 5."""
    m = np.zeros_like(theta, np.float64)
    v = np.zeros_like(theta, np.float64)
    rho_inf = 2 / (1 - beta_2) - 1

    def step(theta, g, lr, t):
        nonlocal m, v
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        m_hat = m / (1 - beta_1**t)
        rho_t = rho_inf - 2 * t * beta_2**t / (1 - beta_2**t)
        if rho_t > 5:
            l_t = np.sqrt(1 - beta_2**t) / (np.sqrt(v) + epsilon)
            r_t = np.sqrt(
                (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            )
            return theta - lr * r_t * m_hat * l_t
        return theta - lr * m_hat

    return _run(theta, grads, learning_rate, weight_decay, step, mask)


def adabelief(
    theta,
    grads,
    learning_rate=0.001,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-16,
    weight_decay=0,
    mask=None,
):
    """Zhuang et al. 2020, Algorithm 2: s_t = β2 s + (1 − β2)(g − m_t)² + ε, both corrected."""
    m = np.zeros_like(theta, np.float64)
    s = np.zeros_like(theta, np.float64)

    def step(theta, g, lr, t):
        nonlocal m, s
        m = beta_1 * m + (1 - beta_1) * g
        s = beta_2 * s + (1 - beta_2) * (g - m) ** 2 + epsilon
        m_hat = m / (1 - beta_1**t)
        s_hat = s / (1 - beta_2**t)
        return theta - lr * m_hat / (np.sqrt(s_hat) + epsilon)

    return _run(theta, grads, learning_rate, weight_decay, step, mask)


def yogi(
    theta,
    grads,
    learning_rate=0.01,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-3,
    initial_accumulator_value=1e-6,
    weight_decay=0,
    mask=None,
):
    """Zaheer et al. 2018, Algorithm 2 (no bias correction), v_0 = 1e-6 as in its experiments."""
    m = np.zeros_like(theta, np.float64)
    v = np.full_like(theta, initial_accumulator_value, np.float64)

    def step(theta, g, lr, t):
        nonlocal m, v
        m = beta_1 * m + (1 - beta_1) * g
        v = v - (1 - beta_2) * np.sign(v - g * g) * g * g
        return theta - lr * m / (np.sqrt(v) + epsilon)

    return _run(theta, grads, learning_rate, weight_decay, step, mask)


def lazy_adam(
    theta,
    grads,
    learning_rate=0.001,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-8,
    weight_decay=0,
    mask=None,
):
    """LazyAdam (TF Addons): Adam on the rows a sparse gradient touches, the rest left alone.

    Each gradient is a dense array (every row touched: plain Adam) or a pair (indices, values)
    of a row-sparse gradient, duplicate indices summed. t counts all steps.
    """
    theta = np.asarray(theta, np.float64).copy()
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    out = [theta.copy()]
    taken = dict(_steps(grads, mask))
    for t in range(1, len(grads) + 1):
        if t not in taken:
            out.append(theta.copy())
            continue
        g = taken[t]
        lr = _lr(learning_rate, t)
        if weight_decay:
            theta = theta - lr * weight_decay * theta
        if isinstance(g, tuple):
            indices, values = g
            rows = {}
            for i, row in zip(np.asarray(indices), np.asarray(values, np.float64)):
                rows[int(i)] = rows.get(int(i), 0.0) + row
        else:
            g = np.asarray(g, np.float64)
            rows = {i: g[i] for i in range(theta.shape[0])}
        for i, g_i in rows.items():
            m[i] = beta_1 * m[i] + (1 - beta_1) * g_i
            v[i] = beta_2 * v[i] + (1 - beta_2) * g_i * g_i
            m_hat = m[i] / (1 - beta_1**t)
            v_hat = v[i] / (1 - beta_2**t)
            theta[i] = theta[i] - lr * m_hat / (np.sqrt(v_hat) + epsilon)
        out.append(theta.copy())
    return np.stack(out)
