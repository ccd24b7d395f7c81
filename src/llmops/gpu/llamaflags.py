"""The flags llama-server's argument parser knows (llama.cpp `common/arg.cpp`, the options that
apply to the server), so that `gpu-plan` can refuse a command line the server would refuse.

Taken from llama.cpp's parser as of the builds in ../shared/gpu-truth (the ones with `-fit`);
a newer build may add flags, hence `gpu-plan --allow-unknown-flags`.  Each entry is one spelling;
`--no-X` negations are listed where llama.cpp defines them.
"""

from __future__ import annotations

LLAMA_SERVER_FLAGS: frozenset[str] = frozenset("""
-h --help --usage --version --license --completion-bash --verbose-prompt
-t --threads -tb --threads-batch -C --cpu-mask -Cr --cpu-range --cpu-strict --prio --poll
-Cb --cpu-mask-batch -Crb --cpu-range-batch --cpu-strict-batch --prio-batch --poll-batch
-c --ctx-size -n --predict --n-predict -b --batch-size -ub --ubatch-size --keep
--swa-full --no-swa-full -fa --flash-attn -p --prompt --no-perf --perf -f --file -bf --binary-file
-e --escape --no-escape --rope-scaling --rope-scale --rope-freq-base --rope-freq-scale
--yarn-orig-ctx --yarn-ext-factor --yarn-attn-factor --yarn-beta-slow --yarn-beta-fast
-nkvo --no-kv-offload -kvo --kv-offload --repack --no-repack -nr --no-host
-ctk --cache-type-k -ctv --cache-type-v -ctkd --cache-type-k-draft -ctvd --cache-type-v-draft
-dt --defrag-thold -np --parallel --mlock --mmap --no-mmap --direct-io -dio --no-direct-io
--numa -dev --device --list-devices --override-tensor -ot -cmoe --cpu-moe -ncmoe --n-cpu-moe
-cmoed --cpu-moe-draft -ncmoed --n-cpu-moe-draft -ngl --gpu-layers --n-gpu-layers
-sm --split-mode -ts --tensor-split -mg --main-gpu -fit --fit -fitt --fit-target -fitc --fit-ctx
--check-tensors --override-kv --op-offload --no-op-offload --lora --lora-scaled
--control-vector --control-vector-scaled --control-vector-layer-range
-m --model -mu --model-url -dr --docker-repo -hf -hfr --hf-repo -hfd -hfrd --hf-repo-draft
-hff --hf-file -hfv -hfrv --hf-repo-v -hffv --hf-file-v -hft --hf-token
--log-disable --log-file --log-colors -v --verbose --log-verbose --offline -lv --verbosity
--log-verbosity --log-prefix --log-timestamps
-s --seed --sampling-seq --sampler-seq --samplers --ignore-eos --temp --top-k --top-p --min-p
--top-nsigma --xtc-probability --xtc-threshold --typical --repeat-last-n --repeat-penalty
--presence-penalty --frequency-penalty --dry-multiplier --dry-base --dry-allowed-length
--dry-penalty-last-n --dry-sequence-breaker --dynatemp-range --dynatemp-exp --mirostat
--mirostat-lr --mirostat-ent -l --logit-bias --grammar --grammar-file -j --json-schema
-jf --json-schema-file --backend-sampling
--pooling --attention --embd-normalize -cb --cont-batching -nocb --no-cont-batching
-kvu --kv-unified --no-kv-unified --context-shift --no-context-shift -sp --special
--mmproj --mmproj-url --mmproj-auto --no-mmproj --mmproj-offload --no-mmproj-offload
--image-min-tokens --image-max-tokens -a --alias --host --port --path --api-prefix
--webui-config --webui-config-file --webui --no-webui --embedding --embeddings
--reranking --rerank --api-key --api-key-file --ssl-key-file --ssl-cert-file
--chat-template-kwargs -to --timeout --threads-http --cache-prompt --no-cache-prompt
--cache-reuse --metrics --props --slots --no-slots --slot-save-path --media-path
--models-dir --models-preset --models-max --models-autoload --no-models-autoload
--jinja --no-jinja --reasoning-format --reasoning-budget -rea --reasoning
--chat-template --chat-template-file --no-prefill-assistant -sps --slot-prompt-similarity
--lora-init-without-apply --sleep-idle-seconds -td --threads-draft -tbd --threads-batch-draft
--draft --draft-max --draft-n --draft-min --draft-n-min --draft-p-min -cd --ctx-size-draft
-devd --device-draft -ngld --gpu-layers-draft --n-gpu-layers-draft -md --model-draft
--spec-replace --spec-type -mv --model-vocoder --tts-use-guide-tokens
--embd-gemma-default --fim-qwen-1.5b-default --fim-qwen-3b-default --fim-qwen-7b-default
--fim-qwen-7b-spec --fim-qwen-14b-spec --fim-qwen-30b-default --gpt-oss-20b-default
--gpt-oss-120b-default --vision-gemma-4b-default --vision-gemma-12b-default
-ctxcp --ctx-checkpoints --swa-checkpoints -cram --cache-ram -lcs --lookup-cache-static
-lcd --lookup-cache-dynamic --warmup --no-warmup --spm-infill --n-probs
""".split())
