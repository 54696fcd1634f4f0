using System.Reflection;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using KtConnect.Engine;
using KtConnect.Engine.Sessions;

namespace KtConnect.Tests.Unit.Module;

/// <summary>The PowerShell surface read from metadata: pipeline binding, help in step with parameters, format file, enums.</summary>
public sealed class CmdletContractTests(ModuleMetadata module) : IClassFixture<ModuleMetadata>
{
    private (Type Type, CustomAttributeData Attribute) Cmdlet(string name)
    {
        var c = module.CmdletTypes().Single(c => c.Name == name);
        return (c.Type, c.Attribute);
    }

    private static IEnumerable<CustomAttributeData> ParameterAttributes(PropertyInfo p) =>
        p.GetCustomAttributesData().Where(a => a.AttributeType.Name == "ParameterAttribute");

    private static IEnumerable<PropertyInfo> Parameters(Type t) =>
        t.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => ParameterAttributes(p).Any());

    [Theory]
    [InlineData("Stop-KtSession")]
    [InlineData("Wait-KtSession")]
    public void Session_consumers_bind_sessions_from_the_pipeline_and_ids_by_property_name(string name)
    {
        var (type, _) = Cmdlet(name);
        var input = type.GetProperty("InputObject")!;
        Assert.Equal("KtConnect.Cmdlets.KtSession[]", input.PropertyType.FullName);
        Assert.Equal(true, ModuleMetadata.Named(ParameterAttributes(input).Single(), "ValueFromPipeline"));
        var id = type.GetProperty("Id")!;
        Assert.Equal("System.Int32[]", id.PropertyType.FullName);
        Assert.Equal(true, ModuleMetadata.Named(ParameterAttributes(id).Single(), "ValueFromPipelineByPropertyName"));
    }

    [Theory]
    [InlineData("Get-KtSession")]
    [InlineData("Stop-KtSession")]
    [InlineData("Wait-KtSession")]
    public void Session_cmdlets_declare_KtSession_output(string name)
    {
        var (type, _) = Cmdlet(name);
        var output = type.GetCustomAttributesData().Single(a => a.AttributeType.Name == "OutputTypeAttribute");
        var types = ((IEnumerable<CustomAttributeTypedArgument>)output.ConstructorArguments[0].Value!).Select(a => ((Type)a.Value!).FullName);
        Assert.Equal(["KtConnect.Cmdlets.KtSession"], types);
    }

    [Theory]
    [InlineData("Start-KtExchange")]
    [InlineData("Start-KtMesh")]
    public void Exchange_and_mesh_take_a_Service_by_default_or_a_Deployment_in_their_own_set(string name)
    {
        var (type, attribute) = Cmdlet(name);
        Assert.Equal("Service", ModuleMetadata.Named(attribute, "DefaultParameterSetName"));
        var service = ParameterAttributes(type.GetProperty("Service")!).Single();
        Assert.Equal(("Service", true, 0), (ModuleMetadata.Named(service, "ParameterSetName"), ModuleMetadata.Named(service, "Mandatory"), ModuleMetadata.Named(service, "Position")));
        var deployment = ParameterAttributes(type.GetProperty("Deployment")!).Single();
        Assert.Equal(("Deployment", true), (ModuleMetadata.Named(deployment, "ParameterSetName"), ModuleMetadata.Named(deployment, "Mandatory")));
        // -Port belongs to both sets.
        Assert.Null(ModuleMetadata.Named(ParameterAttributes(type.GetProperty("Port")!).Single(), "ParameterSetName"));
    }

    [Fact]
    public void Help_pages_give_each_parameter_its_type_and_pipeline_binding_and_document_WhatIf()
    {
        foreach (var (type, name, attribute) in module.CmdletTypes())
        {
            var text = File.ReadAllText(Path.Combine(module.RepoRoot, "docs", "help", name + ".md")).Replace("\r\n", "\n", StringComparison.Ordinal);
            foreach (var p in Parameters(type))
            {
                var section = Regex.Match(text, @"### -" + p.Name + @"\n(.*?)\n### ", RegexOptions.Singleline).Groups[1].Value;
                // Nullable.GetUnderlyingType does not know MetadataLoadContext's Nullable<T>.
                var t = p.PropertyType is { IsGenericType: true } g && g.GetGenericTypeDefinition().FullName == "System.Nullable`1"
                    ? g.GetGenericArguments()[0] : p.PropertyType;
                Assert.Contains("Type: " + t.FullName + "\n", section, StringComparison.Ordinal);
                var attr = ParameterAttributes(p).First();
                var fromPipeline = ModuleMetadata.Named(attr, "ValueFromPipeline") is true;
                var byName = ModuleMetadata.Named(attr, "ValueFromPipelineByPropertyName") is true;
                Assert.Contains($"ValueFromPipeline: {(fromPipeline ? "true" : "false")}\n", section, StringComparison.Ordinal);
                Assert.Contains($"ValueFromPipelineByPropertyName: {(byName ? "true" : "false")}\n", section, StringComparison.Ordinal);
            }
            if (ModuleMetadata.Named(attribute, "SupportsShouldProcess") is true)
            {
                Assert.Contains("### -WhatIf\n", text, StringComparison.Ordinal);
                Assert.Contains("### -Confirm\n", text, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public void Public_enums_mirror_the_engine_enums()
    {
        Assert.Equal(Enum.GetNames<SessionKind>(), module.Cmdlets.GetType("KtConnect.Cmdlets.KtSessionKind", true)!.GetEnumNames());
        Assert.Equal(Enum.GetNames<SessionState>(), module.Cmdlets.GetType("KtConnect.Cmdlets.KtSessionState", true)!.GetEnumNames());
        Assert.Equal(Enum.GetNames<KtConnect.Engine.Sessions.Connect.ConnectMode>(), module.Cmdlets.GetType("KtConnect.Cmdlets.KtConnectMode", true)!.GetEnumNames());
        Assert.Equal(Enum.GetNames<KtConnect.Engine.Sessions.Connect.DnsMode>(), module.Cmdlets.GetType("KtConnect.Cmdlets.KtDnsMode", true)!.GetEnumNames());
        Assert.Equal(Enum.GetNames<KtConnect.Engine.Sessions.Exchange.ExchangeMode>(), module.Cmdlets.GetType("KtConnect.Cmdlets.KtExchangeMode", true)!.GetEnumNames());
        Assert.Equal(Enum.GetNames<KtConnect.Engine.Sessions.Exchange.MeshMode>(), module.Cmdlets.GetType("KtConnect.Cmdlets.KtMeshMode", true)!.GetEnumNames());
    }

    [Fact]
    public void Every_engine_error_category_is_a_PowerShell_ErrorCategory()
    {
        var sma = module.Cmdlets.GetReferencedAssemblies().Single(a => a.Name == "System.Management.Automation");
        var errorCategory = module.LoadReferenced(sma).GetType("System.Management.Automation.ErrorCategory", true)!;
        foreach (var name in Enum.GetNames<KtErrorCategory>())
            Assert.Contains(name, errorCategory.GetEnumNames());
    }

    [Fact]
    public void The_format_file_selects_public_output_types_and_names_real_properties()
    {
        var doc = XDocument.Load(Path.Combine(module.RepoRoot, "KtConnect.Module", "KtConnect.Format.ps1xml"));
        var views = doc.Descendants("View").ToList();
        Assert.NotEmpty(views);
        foreach (var view in views)
        {
            var typeName = view.Element("ViewSelectedBy")!.Element("TypeName")!.Value;
            var type = module.Cmdlets.GetType(typeName);
            Assert.True(type is { IsPublic: true }, $"format view {view.Element("Name")!.Value} selects unknown type {typeName}");
            foreach (var property in view.Descendants("PropertyName").Select(e => e.Value))
                Assert.NotNull(type!.GetProperty(property));
        }
        Assert.Contains(views, v => v.Element("ViewSelectedBy")!.Element("TypeName")!.Value == "KtConnect.Cmdlets.KtSession"
                                    && v.Element("TableControl") is not null);
    }
}
