# Image targets. CI builds agentic/base, agentic/demo and agentic/agent through scripts/test;
# it does not build the provider images, which download their tools from the npm registry.
#
#   make agent-image              agentic/agent-toolchain:dev and agentic/agent:dev (needs root)
#   make provider-images          the four provider images below
#   make claude-image             agentic/claude:dev (also codex-image, opencode-image,
#                                 automation-control-image)
#   make smoke-provider-images    run images/providers/smoke.sh on each provider image
#
# Every build script skips an image whose inputs have not changed, so the targets are phony.

PROVIDERS := claude codex opencode automation-control
PROVIDER_IMAGE_TARGETS := $(PROVIDERS:%=%-image)

.PHONY: agent-image provider-images $(PROVIDER_IMAGE_TARGETS) smoke-provider-images

agent-image:
	bash images/agent/build.sh

provider-images: agent-image
	bash images/providers/build.sh all

$(PROVIDER_IMAGE_TARGETS): %-image: agent-image
	bash images/providers/build.sh $*

smoke-provider-images: provider-images
	set -e; for provider in $(PROVIDERS); do bash images/providers/smoke.sh agentic/$$provider:dev; done
