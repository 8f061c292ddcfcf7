"""Checks that can fail: deliberate bugs injected into the package must make a lesson's Checks fail.

Each mutation below changes one line of a copy of ``dipcourse/`` (a text replacement that must match
exactly once, so a mutation that no longer applies fails loudly instead of passing), puts the copy first
on the kernel's ``PYTHONPATH`` (the lesson's worker processes inherit it), runs the lesson in the quick
profile with every cell executed, and requires that the lesson's Checks raise ``ClaimsFailed`` and that
the claim named in the mutation is among those that fail. A Check that a broken method also passes proves
nothing; these tests are how the course knows its Checks have teeth.

Some bugs make a method diverge (a "prox" that expands makes FISTA blow up). The package then stops the
run with ``DivergedError`` instead of returning a meaningless result, and the lesson fails at that cell
before its Checks: such a mutation names ``DIVERGES`` as what catches it, and the test requires that error.

The list (lesson, bug, the claim that must catch it) is printed by ``pytest -s -m mutation`` and kept in
``benchmarks/README.md``.
"""
import pathlib
import shutil
from dataclasses import dataclass

import pytest

from dipcourse.authoring.course import execute_lesson
from dipcourse.claims import collect

ROOT = pathlib.Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str          # short id
    lesson: str        # notebooks/<lesson>.ipynb
    file: str          # file inside dipcourse/
    find: str          # text replaced (must occur exactly once)
    replace: str
    bug: str           # the bug in words
    caught_by: str     # a substring of the name of a claim that must fail, or DIVERGES

    def __str__(self):
        return self.name


DIVERGES = "the run stops with DivergedError"

MUTATIONS = [
    Mutation("psnr-peak-one", "00_start_here", "metrics.py", "    peak = ref.max().item()\n", "    peak = 1.0\n",
             "PSNR with a fixed peak 1 instead of the reference's maximum (eq. 35)", "|PSNR of x + ε"),
    # lesson 02: smoothing, ES-WMV, DIP's loop, the skip branch
    Mutation("smoothing-frozen", "02_dip_overfitting", "result.py",
             "            self.smoothing * self.smoothed + (1.0 - self.smoothing) * x\n",
             "            self.smoothed\n",
             "the running average r_t is never updated after the first iterate (§4.2 smoothing switched off)",
             "smoothing: best PSNR of r_t minus best PSNR of x_t, no jitter"),
    Mutation("wmv-no-mean", "02_dip_overfitting", "dip.py",
             "variance = max(self.sum_sq / self.window - float(torch.sum(mean * mean)), 0.0)",
             "variance = max(self.sum_sq / self.window, 0.0)",
             "ES-WMV's variance without the window mean subtracted (mean squared norm of the iterates)",
             "ES-WMV's iterate below the oracle's"),
    Mutation("wmv-patience-is-window", "02_dip_overfitting", "dip.py",
             "        if t - self.best_iteration >= self.patience:\n",
             "        if t - self.best_iteration >= self.window:\n",
             "ES-WMV stops after W iterations without a new minimum instead of P",
             "ES-WMV's iterate below the oracle's"),
    Mutation("dip-jitter-ignored", "02_dip_overfitting", "dip.py",
             "x = networks(jitter.value())",
             "x = networks()",
             "fit_dip's loop feeds the network the plain z, ignoring the input jitter (reg_noise_std)",
             "smoothing with input jitter"),
    Mutation("skip-branch-dropped", "02_dip_overfitting", "networks.py",
             "deeper = torch.cat([self.skip(x), deeper], dim=1)",
             "deeper = torch.cat([0 * self.skip(x), deeper], dim=1)",
             "SkipNet's skip branches carry nothing (ns > 0 acts like ns = 0)",
             "skip channels fit the finest frequencies faster"),
    # lesson 01: the TV prox, FISTA's momentum, the DCT, PnP-ADMM's y-step
    Mutation("tv-prox-identity-01", "01_classical_cs", "priors.py",
             "    if lam == 0:\n        return x.detach().clone()\n",
             "    if True:\n        return x.detach().clone()\n",
             "the TV prox returns its input", "PnP-ADMM reaches the TV-MAP objective"),
    Mutation("fista-no-momentum", "01_classical_cs", "solvers.py",
             "            y = x_next + ((t - 1.0) / t_next) * (x_next - x)\n",
             "            y = x_next\n",
             "FISTA without momentum (it is ISTA)", "FISTA reaches ISTA's"),
    Mutation("dct-not-orthonormal", "01_classical_cs", "priors.py",
             "    c[0] /= math.sqrt(2.0)\n", "",
             "the DCT's first row not scaled by 1/√2: Φ is no longer orthonormal, so prox_dct_l1 is no prox of "
             "the L1-in-DCT prior (ΦᵀΦ ≠ I stretches the lowest frequencies, so FISTA diverges)", DIVERGES),
    Mutation("pnp-y-step-sign", "01_classical_cs", "solvers.py",
             "        y = A.solve_regularized(AtB + rho * (x + u), rho)         # line 3\n",
             "        y = A.solve_regularized(AtB + rho * (x - u), rho)         # line 3\n",
             "PnP-ADMM's y-step with x − u instead of x + u (Algorithm 3, line 3)",
             "PnP-ADMM reaches the TV-MAP objective"),
    # lesson 03: DIP-ADMM-v2's dual step and x-step, the TV prox
    Mutation("v2-no-dual-step", "03_admm_variants", "admm.py",
             "        theta_step(optimizer, data_terms(problems, g).sum() + 0.5 * rho * torch.sum((x - g + u) ** 2))  # line 3\n"
             "        g = networks()\n        u = u + (x - g.detach())",
             "        theta_step(optimizer, data_terms(problems, g).sum() + 0.5 * rho * torch.sum((x - g + u) ** 2))  # line 3\n"
             "        g = networks()\n        u = u",
             "DIP-ADMM-v2 without its dual step (u never updated, Algorithm 2 line 4)", "dual step enforces x = G(θ)"),
    Mutation("v2-x-step-ignores-u", "03_admm_variants", "admm.py",
             "        x = prox_each(run, t, counters, g.detach() - u, rho, prox_name)",
             "        x = prox_each(run, t, counters, g.detach(), rho, prox_name)",
             "DIP-ADMM-v2's x-step on G(θ) instead of G(θ) − u (Algorithm 2 line 2)", "dual step enforces x = G(θ)"),
    Mutation("tv-prox-identity-03", "03_admm_variants", "priors.py",
             "    if lam == 0:\n        return x.detach().clone()\n",
             "    if True:\n        return x.detach().clone()\n",
             "the TV prox returns its input (DIP-ADMM-v2 loses its prior)", "the prior smooths G: TV(v2)"),
    # lesson 04: DIP-ADMM-v2's x-step (the prox that carries every hybrid prior)
    Mutation("v2-x-step-skips-prox", "04_hybrid_priors", "admm.py",
             "        x = prox_each(run, t, counters, g.detach() - u, rho, prox_name)",
             "        x = g.detach() - u",
             "DIP-ADMM-v2's x-step never calls the prior's prox (x = G(θ) − u): every hybrid is plain DIP",
             "falls less than DIP"),
    # lesson 05: the exact J Jᵀ and the linearised prediction (40)
    Mutation("gram-random-eigenvectors", "05_jacobian_spectra", "jacobian.py",
             "    return gram\n",
             "    Q = np.linalg.qr(np.random.default_rng(0).standard_normal(gram.shape))[0]\n"
             "    return Q @ np.diag(np.linalg.eigvalsh(gram)) @ Q.T\n",
             "ntk_gram keeps the spectrum of J Jᵀ but its eigenvectors are a random orthonormal basis",
             "image − mean lies in the top p"),
    Mutation("prediction-half-step", "05_jacobian_spectra", "jacobian.py",
             "    factors = (1.0 - lr * values)[None, :] ** np.arange(steps + 1)[:, None]\n",
             "    factors = (1.0 - 0.5 * lr * values)[None, :] ** np.arange(steps + 1)[:, None]\n",
             "the linearised prediction (40) with half the step: (1 − ηλ/2)ᵗ instead of (1 − ηλ)ᵗ",
             "linearised prediction (40) vs real gradient descent"),
    # lesson 06: fitting along the top-p directions
    Mutation("subspace-ignores-U", "06_fitting_along_directions", "jacobian.py",
             "    A = Subspace(U[:, :p], b.shape)",
             "    from dipcourse.operators import Identity\n    A = Identity(b.shape)",
             "fit_along_directions ignores U: it fits the whole image (A = I) instead of U_pᵀ",
             "best p"),
    # lesson 07: SURE's divergence term (eq. 17), ES-WMV's patience
    Mutation("wmv-patience-is-window-07", "07_other_remedies", "dip.py",
             "        if t - self.best_iteration >= self.patience:\n",
             "        if t - self.best_iteration >= self.window:\n",
             "ES-WMV stops after W iterations without a new minimum instead of P",
             "ES-WMV recovers most of DIP's fall"),
    Mutation("sure-no-divergence", "07_other_remedies", "dip.py",
             "        return data_terms(problems, x) + self.sigma ** 2 * self.divergence(networks, x, offset)\n",
             "        return data_terms(problems, x) + 0.0 * self.divergence(networks, x, offset)\n",
             "SURE's loss without its divergence term σ² Tr ∂G/∂b (eq. 17): the network fits b from b",
             "SURE"),
]


def mutated_package(mutation, folder):
    """A copy of ``dipcourse/`` in ``folder`` with the mutation applied; returns the folder."""
    shutil.copytree(ROOT / "dipcourse", folder / "dipcourse", ignore=shutil.ignore_patterns("__pycache__"))
    target = folder / "dipcourse" / mutation.file
    text = target.read_text()
    count = text.count(mutation.find)
    assert count == 1, f"mutation {mutation.name}: the text to replace occurs {count} times in {mutation.file}"
    target.write_text(text.replace(mutation.find, mutation.replace))
    return folder


@pytest.mark.parametrize("mutation", MUTATIONS, ids=str)
def test_every_mutation_still_applies(mutation):
    """Seconds instead of a lesson run: a change to the package that moves a mutated line shows up here first."""
    text = (ROOT / "dipcourse" / mutation.file).read_text()
    assert text.count(mutation.find) == 1, f"{mutation.name}: update its text to the package's current line"


@pytest.mark.mutation
@pytest.mark.parametrize("mutation", MUTATIONS, ids=str)
def test_a_broken_method_fails_the_lessons_checks(mutation, tmp_path):
    package = mutated_package(mutation, tmp_path)
    nb, _, _ = execute_lesson(ROOT / "notebooks" / f"{mutation.lesson}.ipynb", "quick",
                              extra_env={"PYTHONPATH": str(package)}, allow_errors=True)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    if mutation.caught_by == DIVERGES:
        diverged = [e for e in errors if e.get("ename") == "DivergedError"]
        assert diverged, f"{mutation.lesson} with the bug '{mutation.bug}': no run diverged (errors: " \
                         f"{[e.get('ename') for e in errors]})"
        print(f"| {mutation.lesson} | {mutation.bug} | the run stops: {diverged[0].get('evalue')} |")
        return
    assert any(e.get("ename") == "ClaimsFailed" for e in errors), \
        f"{mutation.lesson} with the bug '{mutation.bug}': the Checks passed (errors: " \
        f"{[e.get('ename') for e in errors]})"
    failed = [c["name"] for block in collect(nb) for c in block["claims"] if not c["holds"]]
    assert any(mutation.caught_by in name for name in failed), \
        f"'{mutation.bug}' was not caught by the claim '{mutation.caught_by}'; failing claims: {failed}"
    print(f"| {mutation.lesson} | {mutation.bug} | {'; '.join(failed)} |")
