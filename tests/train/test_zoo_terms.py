"""The single-label zoo inside the trainer (issue: KD zoo): every method's term runs in a distillation step on the
standard pairs, with its modules and state carried in the train state, on mock CIFAR-100 from the real pipeline."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import tensorflow_datasets as tfds

from configs.baselines import cifar100 as baselines
from kdjax import data, models, parallel, tasks
from kdjax.train import step as step_lib
from kdjax.train import terms

WIDTH = 0.25  # the pairs' real layouts at a quarter of the channels: the same code paths, CPU-sized
MODULE_TERMS = ("fitnet", "ofd", "reviewkd", "vid", "crd", "ctkd")  # trainable parameters


def all_methods_losses(pair: str) -> dict:
    """Every method's terms of configs/baselines/cifar100.py in one loss block (CE once)."""
    merged = {}
    for method in baselines.METHODS:
        merged.update(baselines.method_losses(method, pair))
    return merged


@pytest.fixture(scope="module")
def cifar_batches():
    with tfds.testing.mock_data(num_examples=64):
        d = data.build(dict(name="cifar100", views={"image": baselines.WEAK,
                                                    "image_strong": baselines.WEAK + "|randaugment|cutout"},
                            contrast_negatives=32), seed=0, batch_size=8, eval_batch_size=8)
        batches = d.train.batches()
        return [next(batches) for _ in range(2)], len(d.train_split)


# One pair trains (~2 min of CPU, mostly compilation); every pair's layout is checked by the shape-only test below.
@pytest.mark.parametrize("pair", ["resnet32x4-resnet8x4"])
def test_every_method_takes_a_distillation_step(pair, cifar_batches):
    local_batches, dataset_size = cifar_batches
    mesh = parallel.make_mesh()
    batches = [parallel.global_batch(b, mesh) for b in local_batches]
    teacher_name, student_name = pair.split("-")
    teacher = models.get_model(teacher_name, num_classes=100, width=WIDTH)
    student = models.get_model(student_name, num_classes=100, width=WIDTH)
    teacher_vars = teacher.init(jax.random.key(0), batches[0]["image"], train=False)
    weighted = terms.build_terms(all_methods_losses(pair), terms.DataFacts(num_examples=dataset_size))
    networks = step_lib.Networks(student, teacher)
    tx = optax.sgd(0.05, momentum=0.9)
    state = jax.jit(lambda r, b, tv: step_lib.init_state(networks, weighted, tx, r, b, tv))(
        jax.random.key(1), batches[0], teacher_vars)
    train = step_lib.jit_train_step(mesh, networks=networks, weighted_terms=weighted,
                                    task=tasks.get_task("classification"),
                                    schedules={"default": optax.constant_schedule(0.05)}, steps_per_epoch=100)
    before = jax.tree.map(np.asarray, state)
    state, m1 = train(state, teacher_vars, batches[0])
    after_one = jax.tree.map(np.asarray, state)
    state, m2 = train(state, teacher_vars, batches[1])

    expected_total = 0.0
    for wt in weighted:
        value = float(m1[f"loss/{wt.name}"])
        assert np.isfinite(value) and value != 0.0, wt.name
        expected_total += float(wt.factor(jnp.float32(1.0))) * value
    np.testing.assert_allclose(float(m1["loss/total"]), expected_total, rtol=1e-4)
    assert np.isfinite(float(m2["loss/total"]))

    for name in MODULE_TERMS:  # the method modules are trained with the student
        delta = jax.tree.map(lambda a, b: np.abs(a - b).max(), before.params["terms"][name],
                             after_one.params["terms"][name])
        assert max(jax.tree.leaves(delta)) > 0, name
    for name in ("fitnet", "ofd", "reviewkd"):  # their BatchNorms keep running statistics in the loss state
        assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before.loss_state[name]),
                                                            jax.tree.leaves(after_one.loss_state[name]))), name

    crd0, crd1, crd2 = before.loss_state["crd"], after_one.loss_state["crd"], jax.tree.map(np.asarray,
                                                                                            state.loss_state["crd"])
    assert not crd0["z_set"] and crd1["z_set"] and crd1["z_s"] > 0
    assert crd2["z_s"] == crd1["z_s"] and crd2["z_t"] == crd1["z_t"]  # Z frozen after the first step
    touched = np.asarray(local_batches[0]["index"])
    untouched = np.setdiff1d(np.arange(dataset_size), np.concatenate([touched, local_batches[1]["index"]]))
    np.testing.assert_allclose(np.linalg.norm(crd1["bank_s"][touched], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(crd2["bank_t"][untouched], crd0["bank_t"][untouched])


@pytest.mark.parametrize("pair", baselines.PAIRS)
def test_every_standard_pair_lines_up_for_every_method(pair):
    """Shape-only (jax.eval_shape) construction of the full-width pair with every method's modules and state."""
    teacher_name, student_name = pair.split("-")
    teacher = models.get_model(teacher_name, num_classes=100)
    student = models.get_model(student_name, num_classes=100)
    b = 2
    batch = {"image": jnp.zeros((b, 32, 32, 3)), "image_strong": jnp.zeros((b, 32, 32, 3)),
             "label": jnp.zeros((b,), jnp.int32), "index": jnp.arange(b), "contrast_idx": jnp.zeros((b, 17), jnp.int32)}
    losses_cfg = all_methods_losses(pair)
    weighted = terms.build_terms(losses_cfg, terms.DataFacts(num_examples=50))
    networks = step_lib.Networks(student, teacher)

    def build():
        teacher_vars = teacher.init(jax.random.key(0), batch["image"], train=False)
        return step_lib.init_state(networks, weighted, optax.sgd(0.1), jax.random.key(1), batch, teacher_vars)
    state = jax.eval_shape(build)
    assert set(state.params["terms"]) == {wt.name for wt in weighted}
    assert state.loss_state["crd"]["bank_s"].shape == (50, 128)


def test_ofd_refuses_teachers_without_bn_taps():
    weighted = terms.build_terms({"ofd": dict(weight=0.001)})
    student = models.get_model("resnet8x4", num_classes=10, width=WIDTH)
    teacher = models.get_model("shufflev1", num_classes=10, width=WIDTH)
    batch = {"image": jnp.zeros((2, 32, 32, 3)), "label": jnp.zeros((2,), jnp.int32)}
    networks = step_lib.Networks(student, teacher)
    with pytest.raises(ValueError, match="no 'preact_bn' tap"):
        jax.eval_shape(lambda: step_lib.init_state(networks, weighted, optax.sgd(0.1), jax.random.key(1), batch,
                                                   teacher.init(jax.random.key(0), batch["image"], train=False)))


def test_crd_without_contrast_rows_names_the_data_option():
    weighted = terms.build_terms({"crd": dict(weight=0.8)}, terms.DataFacts(num_examples=10))
    model = models.get_model("resnet8", num_classes=10)
    batch = {"image": jnp.zeros((2, 32, 32, 3)), "label": jnp.zeros((2,), jnp.int32)}
    networks = step_lib.Networks(model, model)
    with pytest.raises(ValueError, match="set data.contrast_negatives"):
        jax.eval_shape(lambda: step_lib.init_state(networks, weighted, optax.sgd(0.1), jax.random.key(1), batch,
                                                   model.init(jax.random.key(0), batch["image"], train=False)))
