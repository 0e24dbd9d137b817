// The precomputed plugin: registers the `precomputed` structure tokenizer and structure encoder (outputs of external tools).
#include "components.hpp"
#include "sapling/plugin.hpp"    // for SAPLING_PLUGIN
#include "sapling/registry.hpp"  // for Registry

SAPLING_PLUGIN("precomputed", "structure tokens and pGNN embeddings precomputed by any external tool, read per chain") {
  using namespace sapling;
  // Neither is a default: each needs its file or folder.
  StructureTokenizerRegistry::instance().add(
      {"precomputed",
       "tokens from a FASTA-like file (Foldseek 3Di, ProTokens or other VQ codes), one record per chain, checked "
       "against the chain's residues",
       precomputed::tokenizer_schema(), precomputed::make_tokenizer});
  StructureEncoderRegistry::instance().add(
      {"precomputed",
       "per-residue embeddings from a folder of .npy/.safetensors files, one per chain (AlphaFold2 single "
       "representations, ESM-IF, ...), dimension read from the files",
       precomputed::encoder_schema(), precomputed::make_encoder});
}
