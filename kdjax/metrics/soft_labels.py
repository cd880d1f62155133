"""How much intra-class information a classifier's soft labels carry (the ICD paper's Theorem 2 predicts that its
intra-class contrastive term spreads them; "Enriching Knowledge Distillation with Intra-Class Contrastive
Learning", Sec 3.4)."""
import numpy as np


def soft_label_diversity(logits: np.ndarray, labels: np.ndarray, *, temperature: float = 4.0) -> dict:
    """Of q = softmax(z / T) per example: `intra_class_distance`, the mean pairwise L2 distance between the q of two
    different examples of one class, averaged over classes (classes with one example left out); and
    `non_target_entropy`, the mean entropy of q without its true class, renormalised."""
    if temperature <= 0:
        raise ValueError(f"soft_label_diversity: temperature={temperature} must be > 0")
    z = np.asarray(logits, np.float64) / temperature
    q = np.exp(z - z.max(axis=1, keepdims=True))
    q /= q.sum(axis=1, keepdims=True)
    labels = np.asarray(labels)
    distances = []
    for c in np.unique(labels):
        members = q[labels == c]
        n = len(members)
        if n < 2:
            continue
        sq = np.sum(members ** 2, axis=1)
        d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * members @ members.T, 0.0))
        distances.append(d.sum() / (n * (n - 1)))
    others = q.copy()
    others[np.arange(len(labels)), labels] = 0.0
    others /= others.sum(axis=1, keepdims=True)
    entropy = -np.sum(np.where(others > 0, others * np.log(np.maximum(others, 1e-30)), 0.0), axis=1)
    return {"intra_class_distance": float(np.mean(distances)), "non_target_entropy": float(np.mean(entropy))}
