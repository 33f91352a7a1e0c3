"""Training, shared by every loop of the project (the motion methods' and the world backbone's and CLIP's):

- :mod:`~motiontune.training.steps`: the step loop (progress, loss history, NaN guard, step times, checkpoints);
- :mod:`~motiontune.training.checkpoint`: the fingerprinted, atomic, resumable checkpoint (safetensors + JSON);
- :mod:`~motiontune.training.guards`: NaN/inf loss and gradient checks, the frozen-gradient check;
- :mod:`~motiontune.training.precision`, :mod:`~motiontune.training.compilation`, :mod:`~motiontune.training.memory`:
  mixed precision, ``torch.compile``, activation checkpointing;
- :mod:`~motiontune.training.loop` and :mod:`~motiontune.training.customize`: the motion methods' loop and
  ``learn_motion``.
"""
