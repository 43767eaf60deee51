"""minode.odenet: the MNIST ODE-Net's model functions refuse a model name they do not build."""
import numpy as np
import pytest

from minode import odenet


@pytest.mark.parametrize("call", ["init_model", "logits"])
def test_an_unknown_model_name_is_refused_not_built_as_the_resnet(call):
    # "ode-net" (for "odenet") was built and run as the ResNet, the branch for any other name.
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"model must be one of \['odenet', 'rknet', 'resnet', "
                                         r"'mlp'\], got 'ode-net'"):
        if call == "init_model":
            odenet.init_model("ode-net", rng, 4)
        else:
            params = odenet.init_model("resnet", rng, 4)
            images = np.zeros((1, 1, 28, 28), dtype=odenet.DTYPE)
            odenet.logits("ode-net", params, images, {})
