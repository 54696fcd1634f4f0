using System.Reflection;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace KtConnect.Tests.Unit.Module;

public sealed class ModuleMetadataTests(ModuleMetadata module) : IClassFixture<ModuleMetadata>
{
    private static readonly string[] ChangingVerbs = ["Connect", "Start", "Stop", "New", "Clear", "Restore", "Remove", "Set"];

    [Fact]
    public void Manifest_exports_exactly_the_cmdlets_in_the_assembly()
    {
        var inAssembly = module.CmdletTypes().Select(c => c.Name).ToList();
        var listed = module.ManifestList("CmdletsToExport").Order(StringComparer.Ordinal).ToList();
        Assert.Equal(inAssembly, listed);
        Assert.Equal(listed.Count, listed.Distinct().Count());
    }

    [Fact]
    public void Manifest_is_a_binary_core_module_with_explicit_empty_lists()
    {
        Assert.Equal("KtConnect.Cmdlets.dll", module.ManifestValue("RootModule"));
        Assert.Equal("7.4", module.ManifestValue("PowerShellVersion"));
        Assert.Equal("{{ModuleVersion}}", module.ManifestValue("ModuleVersion"));
        Assert.Equal(["Core"], module.ManifestList("CompatiblePSEditions"));
        Assert.Empty(module.ManifestList("FunctionsToExport"));
        Assert.Empty(module.ManifestList("AliasesToExport"));
        Assert.Empty(module.ManifestList("VariablesToExport"));
        Assert.Equal(["KtConnect.Format.ps1xml"], module.ManifestList("FormatsToProcess"));
        foreach (var tag in new[] { "PSEdition_Core", "Windows", "Linux", "MacOS" })
            Assert.Contains(tag, module.ManifestList("Tags"));
    }

    [Fact]
    public void Assemblies_carry_the_one_version_of_Directory_Build_props()
    {
        var props = File.ReadAllText(Path.Combine(module.RepoRoot, "Directory.Build.props"));
        var version = Regex.Match(props, "<KtConnectVersion>([^<]+)</KtConnectVersion>").Groups[1].Value;
        Assert.Equal(Version.Parse(version + ".0"), module.Cmdlets.GetName().Version);
        Assert.Equal(Version.Parse(version + ".0"), module.Engine.GetName().Version);
    }

    [Fact]
    public void Cmdlets_are_sealed_named_after_their_verb_and_noun_and_declare_output()
    {
        foreach (var (type, name, attribute) in module.CmdletTypes())
        {
            Assert.True(type.IsPublic && type.IsSealed, $"{type.Name} must be public sealed");
            Assert.Equal(name.Replace("-", "", StringComparison.Ordinal) + "Command", type.Name);
            Assert.StartsWith("Kt", name.Split('-')[1], StringComparison.Ordinal);
            Assert.Contains(type.GetCustomAttributesData(), a => a.AttributeType.Name == "OutputTypeAttribute");
            var verb = name.Split('-')[0];
            if (ChangingVerbs.Contains(verb))
                Assert.True(ModuleMetadata.Named(attribute, "SupportsShouldProcess") is true, $"{name} changes state: SupportsShouldProcess");
        }
    }

    [Fact]
    public void Every_cmdlet_has_a_help_page_documenting_every_parameter()
    {
        foreach (var (type, name, _) in module.CmdletTypes())
        {
            var page = Path.Combine(module.RepoRoot, "docs", "help", name + ".md");
            Assert.True(File.Exists(page), $"missing help page docs/help/{name}.md");
            var text = File.ReadAllText(page);
            Assert.Contains("## SYNOPSIS", text, StringComparison.Ordinal);
            Assert.Contains("## DESCRIPTION", text, StringComparison.Ordinal);
            Assert.Matches(new Regex(@"### Example 1", RegexOptions.None), text);
            foreach (var p in type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
                         .Where(p => p.GetCustomAttributesData().Any(a => a.AttributeType.Name == "ParameterAttribute")))
            {
                Assert.True(text.Contains("### -" + p.Name + "\n", StringComparison.Ordinal) || text.Contains("### -" + p.Name + "\r\n", StringComparison.Ordinal),
                    $"docs/help/{name}.md does not document -{p.Name}");
            }
        }
    }

    [Fact]
    public void The_engine_never_references_PowerShell()
    {
        Assert.DoesNotContain(module.Engine.GetReferencedAssemblies(), a => a.Name == "System.Management.Automation");
        Assert.Contains(module.Cmdlets.GetReferencedAssemblies(), a => a.Name == "System.Management.Automation");
    }

    /// <summary>
    /// PowerShell enumerates the exported types (Assembly.GetExportedTypes) before ModuleInit.OnImport can tell it where
    /// the engine is. Loading a type loads its base types, interfaces and the generic constraints of its type and
    /// methods, so none of them may live in the engine, or Import-Module fails with FileNotFoundException.
    /// </summary>
    [Fact]
    public void Public_types_load_without_the_engine()
    {
        static IEnumerable<Type> Shape(Type t)
        {
            for (var b = t.BaseType; b is not null; b = b.BaseType) yield return b;
            foreach (var i in t.GetInterfaces()) yield return i;
            foreach (var g in t.IsGenericTypeDefinition ? t.GetGenericArguments() : []) foreach (var c in g.GetGenericParameterConstraints()) yield return c;
            const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
            foreach (var m in t.GetMethods(all).Where(m => m.IsGenericMethodDefinition))
                foreach (var g in m.GetGenericArguments()) foreach (var c in g.GetGenericParameterConstraints()) yield return c;
            if (t.IsValueType) foreach (var f in t.GetFields(all)) yield return f.FieldType;
        }
        var offenders = module.Cmdlets.GetExportedTypes()
            .SelectMany(t => Shape(t).Where(s => s.Assembly.GetName().Name == "KtConnect.Engine").Select(s => $"{t.FullName} needs {s.FullName}"))
            .ToList();
        Assert.Empty(offenders);
    }

    [Fact]
    public void Module_initializer_hooks_import_and_removal()
    {
        var init = module.Cmdlets.GetType("KtConnect.Cmdlets.ModuleInit", throwOnError: true)!;
        var interfaces = init.GetInterfaces().Select(i => i.FullName).ToList();
        Assert.Contains("System.Management.Automation.IModuleAssemblyInitializer", interfaces);
        Assert.Contains("System.Management.Automation.IModuleAssemblyCleanup", interfaces);
    }

    [Fact]
    public void Dependencies_allow_list_matches_the_engine_runtime_dependencies()
    {
        var listed = File.ReadAllLines(Path.Combine(module.RepoRoot, "KtConnect.Module", "Dependencies.txt"))
            .Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Order(StringComparer.Ordinal).ToList();
        var depsJson = Path.Combine(module.RepoRoot, "src", "Engine", "bin", module.Configuration, "net8.0", "KtConnect.Engine.deps.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(depsJson));
        var runtime = new SortedSet<string>(StringComparer.Ordinal) { "KtConnect.Engine.dll" };
        foreach (var target in doc.RootElement.GetProperty("targets").EnumerateObject())
        {
            foreach (var lib in target.Value.EnumerateObject())
            {
                if (!lib.Value.TryGetProperty("runtime", out var files)) continue;
                foreach (var f in files.EnumerateObject()) runtime.Add(Path.GetFileName(f.Name));
            }
        }
        Assert.Equal(runtime.ToList(), listed);
    }
}
